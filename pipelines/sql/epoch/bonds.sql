-- Bonds in closed form (SPEC 5.2's B' = B + S · w, summed over the holder's
-- segment): B'_ij = bond_ij + w_ij · ΣS_i, with bond_ij the bond after the
-- segment's first epoch and ΣS_i the holder's stake since, an exact integer
-- converted to DOUBLE once, then one multiply and one add (math/bonds.rs
-- closed_form). Zero bonds are not kept.
WITH b AS (
  SELECT s.holder, s.peer, s.bond + s.weight * CAST(p.bond_stake AS DOUBLE) AS bond
  FROM segments s JOIN peers p ON p.peer = s.holder
)
SELECT holder, peer, bond FROM b WHERE bond > 0
