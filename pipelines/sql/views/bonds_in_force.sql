-- Bonds after every epoch, nonzero only: `bonds` holds each holder's segment
-- at the epoch it started (`state.bonds_epoch`) with the bonds after that
-- epoch, and the bond later is bond + weight · bond_stake, the holder's stake
-- summed since as an exact integer converted to DOUBLE once
-- (coordinator/src/math/bonds.rs).
SELECT s.epoch, b.holder, b.peer, b.bond + b.weight * CAST(s.bond_stake AS DOUBLE) AS bond
FROM state s
JOIN bonds b ON b.holder = s.uid AND b.epoch = s.bonds_epoch
WHERE b.bond + b.weight * CAST(s.bond_stake AS DOUBLE) > 0
