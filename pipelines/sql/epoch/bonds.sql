-- Bonds in closed form (SPEC 5.2's B' = B + S · w, summed over the holder's
-- segment): B'_ij = bond_ij + w_ij · ΣS_i, with bond_ij the bond after the
-- segment's first epoch and ΣS_i the holder's stake since (`bond_stake`, an
-- exact integer carried on each entry), converted to DOUBLE once, then one
-- multiply and one add (math/bonds.rs closed_form). Zero bonds are not kept.
-- Registered as the view `new_bonds`: the dividends' plans read it, nothing
-- materialises it.
SELECT holder, peer, bond
FROM (SELECT holder, peer, bond + weight * CAST(bond_stake AS DOUBLE) AS bond FROM segments)
WHERE bond > 0
