-- Bonds after every epoch, nonzero only: `bonds` holds each holder's segment
-- at the epoch it started (`state.bonds_epoch`), and the bond is
-- base + weight · bond_stake, the holder's stake summed over the segment as an
-- exact integer converted to DOUBLE once (coordinator/src/math/bonds.rs).
SELECT s.epoch, b.holder, b.peer, b.base + b.weight * CAST(s.bond_stake AS DOUBLE) AS bond
FROM state s
JOIN bonds b ON b.holder = s.uid AND b.epoch = s.bonds_epoch
WHERE b.base + b.weight * CAST(s.bond_stake AS DOUBLE) > 0
