//! Parameters of the ANI-style (Behler–Parrinello modified by Smith et al.) symmetry functions.

use crate::error::{invalid, Result};

/// Most angular shifts, and most angle sections, a parameter set may have (the per-triple work
/// arrays live on the stack).
pub const MAX_ANGULAR: usize = 32;
/// Most radial shifts a parameter set may have.
pub const MAX_RADIAL: usize = 128;

/// Parameters of the ANI atomic environment vector.
///
/// Radial, for each neighbour species `s` and shift `Rs` (Å):
/// `G[s, Rs] = radial_scale · Σ_{j∈s} exp(−η_R (r_ij − Rs)²) · fc(r_ij, Rc_R)`.
///
/// Angular, for each unordered neighbour species pair `(s, t)`, radial shift `Rs` (Å) and angle
/// section `θs` (rad): `G = 2 · Σ_{j<k} ((1 + cos(θ_ijk − θs)) / 2)^ζ · exp(−η_A ((r_ij + r_ik)/2 − Rs)²)
/// · fc(r_ij) fc(r_ik)`, with `cos θ_ijk = cos_scale · (r_ij · r_ik) / (|r_ij| |r_ik|)`.
///
/// `fc(r, Rc) = ½ cos(π r / Rc) + ½` for `r < Rc`, else 0. `radial_scale = 0.25` and
/// `cos_scale = 0.95` are torchani's conventions (the latter keeps `acos` differentiable).
///
/// Feature layout per atom: radial blocks `[s][Rs]` first, then angular blocks
/// `[(s, t) in upper-triangle order][Rs][θs]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AniParams {
    /// Number of chemical species (channels are per neighbour species / species pair).
    pub n_species: usize,
    /// Radial cutoff, Å.
    pub radial_cutoff: f64,
    /// Radial Gaussian width η_R, Å⁻².
    pub radial_eta: f64,
    /// Radial Gaussian centres, Å.
    pub radial_shifts: Vec<f64>,
    /// Prefactor of the radial terms (torchani: 0.25).
    pub radial_scale: f64,
    /// Angular cutoff, Å.
    pub angular_cutoff: f64,
    /// Angular radial Gaussian width η_A, Å⁻².
    pub angular_eta: f64,
    /// Angular exponent ζ (≥ 1).
    pub angular_zeta: f64,
    /// Angular radial Gaussian centres, Å.
    pub angular_shifts: Vec<f64>,
    /// Angle sections θs, rad.
    pub angle_sections: Vec<f64>,
    /// Factor on cos θ before taking the angle (torchani: 0.95), in (0, 1): below 1 the angle
    /// stays differentiable at θ = 0 and π.
    pub cos_scale: f64,
}

impl AniParams {
    /// Number of radial features per atom.
    pub fn n_radial(&self) -> usize {
        self.n_species * self.radial_shifts.len()
    }

    /// Number of angular features per species pair.
    pub fn angular_block(&self) -> usize {
        self.angular_shifts.len() * self.angle_sections.len()
    }

    /// Number of unordered species pairs.
    pub fn n_species_pairs(&self) -> usize {
        self.n_species * (self.n_species + 1) / 2
    }

    /// Number of features per atom.
    pub fn n_features(&self) -> usize {
        self.n_radial() + self.n_species_pairs() * self.angular_block()
    }

    /// Index of the unordered species pair `(a, b)` in upper-triangle order.
    #[inline(always)]
    pub fn species_pair_index(&self, a: usize, b: usize) -> usize {
        let (p, q) = if a <= b { (a, b) } else { (b, a) };
        p * (2 * self.n_species - p - 1) / 2 + q
    }

    /// Largest cutoff, Å: the neighbour list must reach this far.
    pub fn max_cutoff(&self) -> f64 {
        self.radial_cutoff.max(self.angular_cutoff)
    }

    /// Check that every parameter is finite and in its domain; the error names the parameter.
    pub fn validate(&self) -> Result<()> {
        let positive = |x: f64, name: &str| {
            if x.is_finite() && x > 0.0 {
                Ok(())
            } else {
                Err(invalid!("{name} must be finite and positive, got {x}"))
            }
        };
        if self.n_species == 0 {
            return Err(invalid!("n_species must be at least 1"));
        }
        positive(self.radial_cutoff, "radial_cutoff")?;
        positive(self.angular_cutoff, "angular_cutoff")?;
        positive(self.radial_eta, "radial_eta")?;
        positive(self.angular_eta, "angular_eta")?;
        positive(self.radial_scale, "radial_scale")?;
        positive(self.cos_scale, "cos_scale")?;
        if self.cos_scale >= 1.0 {
            return Err(invalid!(
                "cos_scale must be in (0, 1), got {}",
                self.cos_scale
            ));
        }
        if !(self.angular_zeta.is_finite() && self.angular_zeta >= 1.0) {
            return Err(invalid!(
                "angular_zeta must be finite and at least 1, got {}",
                self.angular_zeta
            ));
        }
        for (name, v) in [
            ("radial_shifts", &self.radial_shifts),
            ("angular_shifts", &self.angular_shifts),
            ("angle_sections", &self.angle_sections),
        ] {
            if v.is_empty() {
                return Err(invalid!("{name} must not be empty"));
            }
            let most = if name == "radial_shifts" {
                MAX_RADIAL
            } else {
                MAX_ANGULAR
            };
            if v.len() > most {
                return Err(invalid!(
                    "{name} may have at most {most} entries, got {}",
                    v.len()
                ));
            }
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                return Err(invalid!("{name} must be finite, got {x}"));
            }
        }
        Ok(())
    }
}
