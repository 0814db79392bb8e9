//! Periodic cells: validation and the working frame used for binning.
//!
//! A cell is given as ASE gives it: lattice vectors as rows, in Å, plus one periodicity flag per
//! lattice vector. Only the periodic vectors matter for the geometry; rows along non-periodic
//! directions may be anything (zero included) and are replaced by an orthonormal completion.

use crate::error::{invalid, Result};

/// 3-vector helpers on plain arrays.
pub(crate) mod vec3 {
    pub type V = [f64; 3];
    #[inline(always)]
    pub fn dot(a: V, b: V) -> f64 {
        a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
    }
    #[inline(always)]
    pub fn cross(a: V, b: V) -> V {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    }
    #[inline(always)]
    pub fn norm(a: V) -> f64 {
        dot(a, a).sqrt()
    }
    #[inline(always)]
    pub fn scale(a: V, s: f64) -> V {
        [a[0] * s, a[1] * s, a[2] * s]
    }
}
use vec3::{cross, dot, norm, scale, V};

/// Relative tolerance below which periodic lattice vectors count as linearly dependent.
const SINGULAR_TOL: f64 = 1e-10;

/// A validated cell: the user's lattice vectors (rows, Å) and periodicity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// Lattice vectors as rows, Å.
    pub matrix: [V; 3],
    /// Periodicity along each lattice vector.
    pub pbc: [bool; 3],
}

/// The frame in which atoms are binned: periodic rows are the lattice vectors, non-periodic rows
/// an orthonormal completion, so that fractional coordinates along non-periodic rows are distances
/// in Å.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    pub rows: [V; 3],
    /// Inverse of `rows` (so that `s = r · inverse`).
    pub inverse: [V; 3],
    /// Distance between successive lattice planes along each row, Å (1 for non-periodic rows).
    pub plane_spacing: [f64; 3],
}

impl Cell {
    /// Validate a cell. Periodic lattice vectors must be finite and linearly independent; the
    /// rows along non-periodic directions are ignored.
    pub fn new(matrix: [V; 3], pbc: [bool; 3]) -> Result<Self> {
        for (k, row) in matrix.iter().enumerate() {
            if pbc[k] && !row.iter().all(|x| x.is_finite()) {
                return Err(invalid!("cell vector {k} is not finite: {row:?}"));
            }
        }
        let cell = Cell { matrix, pbc };
        cell.frame()?;
        Ok(cell)
    }

    /// Indices of the periodic directions.
    pub fn periodic_axes(&self) -> Vec<usize> {
        (0..3).filter(|&k| self.pbc[k]).collect()
    }

    /// Volume spanned by the three lattice vectors, Å³ (absolute value of the determinant).
    pub fn volume(&self) -> f64 {
        let [a, b, c] = self.matrix;
        dot(a, cross(b, c)).abs()
    }

    pub(crate) fn frame(&self) -> Result<Frame> {
        let periodic = self.periodic_axes();
        let mut rows = [[0.0; 3]; 3];
        for &k in &periodic {
            rows[k] = self.matrix[k];
        }
        match periodic.len() {
            3 => {
                let [a, b, c] = self.matrix;
                let det = dot(a, cross(b, c)).abs();
                if !(det > SINGULAR_TOL * norm(a) * norm(b) * norm(c)) {
                    return Err(invalid!(
                        "the cell is singular along its periodic directions (volume {det:.3e} Å³): \
                         lattice vectors {a:?}, {b:?}, {c:?}"
                    ));
                }
            }
            2 => {
                let (p, q) = (periodic[0], periodic[1]);
                let n = cross(self.matrix[p], self.matrix[q]);
                let area = norm(n);
                if !(area > SINGULAR_TOL * norm(self.matrix[p]) * norm(self.matrix[q])) {
                    return Err(invalid!(
                        "the periodic cell vectors {p} and {q} are parallel or zero: {:?}, {:?}",
                        self.matrix[p],
                        self.matrix[q]
                    ));
                }
                let k = 3 - p - q;
                rows[k] = scale(n, 1.0 / area);
            }
            1 => {
                let p = periodic[0];
                let a = self.matrix[p];
                let len = norm(a);
                if !(len > 0.0) {
                    return Err(invalid!("the periodic cell vector {p} is zero"));
                }
                let u = scale(a, 1.0 / len);
                // The Cartesian axis least aligned with `a` gives a well-conditioned completion.
                let axis = (0..3)
                    .min_by(|&x, &y| u[x].abs().total_cmp(&u[y].abs()))
                    .unwrap_or(0);
                let mut e = [0.0; 3];
                e[axis] = 1.0;
                let v = cross(u, e);
                let v = scale(v, 1.0 / norm(v));
                let w = cross(u, v);
                let others: Vec<usize> = (0..3).filter(|&k| k != p).collect();
                rows[others[0]] = v;
                rows[others[1]] = w;
            }
            _ => rows = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        }
        let inverse = invert(&rows)
            .ok_or_else(|| invalid!("the cell is singular along its periodic directions"))?;
        let [a, b, c] = rows;
        let volume = dot(a, cross(b, c)).abs();
        let plane_spacing = [
            volume / norm(cross(b, c)),
            volume / norm(cross(c, a)),
            volume / norm(cross(a, b)),
        ];
        Ok(Frame {
            rows,
            inverse,
            plane_spacing,
        })
    }
}

/// Inverse of a 3×3 matrix (rows), `None` if singular.
pub(crate) fn invert(m: &[V; 3]) -> Option<[V; 3]> {
    let [a, b, c] = *m;
    let det = dot(a, cross(b, c));
    if det == 0.0 || !det.is_finite() {
        return None;
    }
    // Columns of the inverse are the reciprocal vectors / det.
    let bc = cross(b, c);
    let ca = cross(c, a);
    let ab = cross(a, b);
    let inv_det = 1.0 / det;
    Some([
        [bc[0] * inv_det, ca[0] * inv_det, ab[0] * inv_det],
        [bc[1] * inv_det, ca[1] * inv_det, ab[1] * inv_det],
        [bc[2] * inv_det, ca[2] * inv_det, ab[2] * inv_det],
    ])
}

/// Row vector times matrix: `r · m`.
#[inline(always)]
pub(crate) fn row_times(r: V, m: &[V; 3]) -> V {
    [
        r[0] * m[0][0] + r[1] * m[1][0] + r[2] * m[2][0],
        r[0] * m[0][1] + r[1] * m[1][1] + r[2] * m[2][1],
        r[0] * m[0][2] + r[1] * m[1][2] + r[2] * m[2][2],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_triclinic() {
        let m = [[4.0, 0.0, 0.0], [1.0, 3.0, 0.0], [0.5, 0.7, 5.0]];
        let inv = invert(&m).unwrap();
        for r in 0..3 {
            let x = row_times(m[r], &inv);
            for c in 0..3 {
                assert!((x[c] - if r == c { 1.0 } else { 0.0 }).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn singular_periodic_cell_is_refused() {
        let m = [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        assert!(Cell::new(m, [true, true, true]).is_err());
        assert!(Cell::new(m, [true, false, true]).is_ok());
        assert!(Cell::new([[0.0; 3]; 3], [false; 3]).is_ok());
        assert!(Cell::new([[0.0; 3]; 3], [false, true, false]).is_err());
    }

    #[test]
    fn completion_is_orthonormal_to_periodic_vectors() {
        let m = [[3.0, 1.0, 0.2], [0.0; 3], [0.0; 3]];
        let f = Cell::new(m, [true, false, false]).unwrap().frame().unwrap();
        assert!(dot(f.rows[0], f.rows[1]).abs() < 1e-14);
        assert!(dot(f.rows[0], f.rows[2]).abs() < 1e-14);
        assert!((norm(f.rows[1]) - 1.0).abs() < 1e-14);
        assert!((f.plane_spacing[1] - 1.0).abs() < 1e-14);
    }
}
