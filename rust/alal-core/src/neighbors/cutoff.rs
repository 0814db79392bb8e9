//! Pair cutoffs: one radius for all pairs, per-atom radii, or a table per species pair.

use crate::error::{invalid, Result};

/// The cutoff that decides whether a pair is a neighbour (`d < cutoff`), in Å.
#[derive(Debug, Clone, PartialEq)]
pub enum Cutoff {
    /// One cutoff for every pair.
    Uniform(f64),
    /// Per-atom radii: a pair is in if `d < radius[i] + radius[j]` (ASE's list-of-radii form).
    Radii(Vec<f64>),
    /// Per species pair: `table[s_i * n_species + s_j]` for atoms of species `s_i`, `s_j`
    /// (symmetric). A cutoff of 0 excludes that species pair.
    SpeciesPairs {
        /// Species index of each atom.
        species: Vec<usize>,
        /// Number of species (side of the table).
        n_species: usize,
        /// Row-major `n_species × n_species` table of cutoffs, Å.
        table: Vec<f64>,
    },
}

impl Cutoff {
    /// Largest cutoff of any pair, Å.
    pub fn max(&self) -> f64 {
        match self {
            Cutoff::Uniform(c) => *c,
            Cutoff::Radii(r) => 2.0 * r.iter().copied().fold(0.0, f64::max),
            Cutoff::SpeciesPairs { table, .. } => table.iter().copied().fold(0.0, f64::max),
        }
    }

    /// Check values and sizes against a structure of `n_atoms` atoms.
    pub fn validate(&self, n_atoms: usize) -> Result<()> {
        let check = |c: f64, what: &str| -> Result<()> {
            if c.is_finite() && c >= 0.0 {
                Ok(())
            } else {
                Err(invalid!(
                    "{what} must be a finite, non-negative distance in Å, got {c}"
                ))
            }
        };
        match self {
            Cutoff::Uniform(c) => check(*c, "the cutoff"),
            Cutoff::Radii(r) => {
                if r.len() != n_atoms {
                    return Err(invalid!(
                        "got {} per-atom cutoff radii for {n_atoms} atoms",
                        r.len()
                    ));
                }
                r.iter()
                    .try_for_each(|&c| check(c, "each per-atom cutoff radius"))
            }
            Cutoff::SpeciesPairs {
                species,
                n_species,
                table,
            } => {
                if species.len() != n_atoms {
                    return Err(invalid!(
                        "got {} species for {n_atoms} atoms",
                        species.len()
                    ));
                }
                if table.len() != n_species * n_species {
                    return Err(invalid!(
                        "the species-pair cutoff table has {} entries, expected {n_species}²",
                        table.len()
                    ));
                }
                if let Some(&s) = species.iter().find(|&&s| s >= *n_species) {
                    return Err(invalid!(
                        "species index {s} is out of range (n_species = {n_species})"
                    ));
                }
                table
                    .iter()
                    .try_for_each(|&c| check(c, "each species-pair cutoff"))?;
                for a in 0..*n_species {
                    for b in 0..a {
                        if table[a * n_species + b] != table[b * n_species + a] {
                            return Err(invalid!(
                                "the species-pair cutoff table is not symmetric at ({a}, {b})"
                            ));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Cutoff of the pair `(i, j)`, Å.
    #[inline(always)]
    pub(crate) fn pair(&self, i: usize, j: usize) -> f64 {
        match self {
            Cutoff::Uniform(c) => *c,
            Cutoff::Radii(r) => r[i] + r[j],
            Cutoff::SpeciesPairs {
                species,
                n_species,
                table,
            } => table[species[i] * n_species + species[j]],
        }
    }
}
