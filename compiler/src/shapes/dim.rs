//! Symbolic dimensions: integer polynomials over named symbols, with floor division.
//!
//! A dimension is `28`, `B`, `2·hidden + 1` or `floor((H + 2) / 2)`. Each is kept in a
//! canonical form (a sum of monomials with integer coefficients, where a floor division
//! that does not come out exact is an opaque factor), so two dimensions are equal exactly
//! when their canonical forms are. Arithmetic is checked: a coefficient beyond `u64::MAX`
//! is an [`Overflow`], never a wrap or a panic.

use std::collections::BTreeMap;
use std::fmt;

/// Arithmetic on dimensions went past what nnc represents (`u64::MAX` for any coefficient).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

/// Why a window's output size has no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowError {
    /// A size past the limit of a dimension.
    Overflow,
    /// A stride that is zero or not a number.
    Stride,
}

/// A window's output size and the span it slides over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// `floor((n + 2 pad - kernel) / stride) + 1`: the lecture's output-size formula.
    pub out: Dim,
    /// `n + 2 pad - kernel`, for explanations.
    pub span: Dim,
}

/// The positions of a window of size `kernel` moved by `stride` over `n` padded by `pad`
/// on each side: the one definition that the check, the IR's convolution and pooling, and
/// `conv` use.
pub fn window(n: &Dim, kernel: &Dim, stride: &Dim, pad: &Dim) -> Result<Window, WindowError> {
    let overflow = |_| WindowError::Overflow;
    let padded = n.checked_add(&Dim::constant(2).checked_mul(pad).map_err(overflow)?).map_err(overflow)?;
    let span = padded.checked_sub(kernel).map_err(overflow)?;
    let steps = span.floor_div(stride).ok_or(WindowError::Stride)?;
    Ok(Window { out: steps.checked_add(&Dim::constant(1)).map_err(overflow)?, span })
}

/// The largest magnitude a coefficient may have.
const LIMIT: i128 = u64::MAX as i128;

fn checked(value: Option<i128>) -> Result<i128, Overflow> {
    match value {
        Some(v) if v.abs() <= LIMIT => Ok(v),
        _ => Err(Overflow),
    }
}

/// A factor of a monomial: a symbol, or a floor division that is not exact.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Atom {
    Symbol(String),
    FloorDiv(Box<Dim>, i128),
}

/// A product of atoms, sorted; the empty product is the constant term.
type Monomial = Vec<Atom>;

/// A symbolic dimension in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dim {
    /// Monomial -> its coefficient; no zero coefficients are stored.
    terms: BTreeMap<Monomial, i128>,
}

impl Dim {
    pub fn constant(value: i128) -> Dim {
        let mut terms = BTreeMap::new();
        if value != 0 {
            terms.insert(Vec::new(), value);
        }
        Dim { terms }
    }

    pub fn symbol(name: &str) -> Dim {
        let mut terms = BTreeMap::new();
        terms.insert(vec![Atom::Symbol(name.to_string())], 1);
        Dim { terms }
    }

    /// The value, if the dimension has no symbols.
    pub fn as_const(&self) -> Option<i128> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Vec::new()).copied(),
            _ => None,
        }
    }

    pub fn is_const(&self) -> bool {
        self.as_const().is_some()
    }

    pub fn checked_add(&self, other: &Dim) -> Result<Dim, Overflow> {
        let mut terms = self.terms.clone();
        for (monomial, coefficient) in &other.terms {
            let sum = checked(terms.get(monomial).copied().unwrap_or(0).checked_add(*coefficient))?;
            if sum == 0 {
                terms.remove(monomial);
            } else {
                terms.insert(monomial.clone(), sum);
            }
        }
        Ok(Dim { terms })
    }

    pub fn checked_neg(&self) -> Dim {
        Dim { terms: self.terms.iter().map(|(m, c)| (m.clone(), -c)).collect() }
    }

    pub fn checked_sub(&self, other: &Dim) -> Result<Dim, Overflow> {
        self.checked_add(&other.checked_neg())
    }

    pub fn checked_mul(&self, other: &Dim) -> Result<Dim, Overflow> {
        let mut result = Dim::default();
        for (m1, c1) in &self.terms {
            for (m2, c2) in &other.terms {
                let mut monomial: Monomial = m1.iter().chain(m2).cloned().collect();
                monomial.sort();
                let mut term = Dim::default();
                term.terms.insert(monomial, checked(c1.checked_mul(*c2))?);
                result = result.checked_add(&term)?;
            }
        }
        Ok(result)
    }

    /// `floor(self / divisor)`. Exact when every coefficient divides (for a positive
    /// constant divisor) or the divisor is a monomial dividing every term; otherwise, for a
    /// constant divisor, an opaque factor. `None` for division by zero or by a polynomial
    /// that does not divide.
    pub fn floor_div(&self, divisor: &Dim) -> Option<Dim> {
        if let Some(d) = divisor.as_const() {
            if d == 0 {
                return None;
            }
            if let Some(n) = self.as_const() {
                return Some(Dim::constant(n.div_euclid(d) - if d < 0 && n.rem_euclid(d) != 0 { 1 } else { 0 }));
            }
            if self.terms.values().all(|c| c % d == 0) {
                return Some(Dim { terms: self.terms.iter().map(|(m, c)| (m.clone(), c / d)).collect() });
            }
            let mut terms = BTreeMap::new();
            terms.insert(vec![Atom::FloorDiv(Box::new(self.clone()), d)], 1);
            return Some(Dim { terms });
        }
        // A divisor with one term, such as `4·B`: divide monomial by monomial.
        let mut divisor_terms = divisor.terms.iter();
        let (divisor_monomial, divisor_coefficient) = divisor_terms.next()?;
        if divisor_terms.next().is_some() {
            return None;
        }
        let mut terms = BTreeMap::new();
        for (monomial, coefficient) in &self.terms {
            if coefficient % divisor_coefficient != 0 {
                return None;
            }
            let mut rest = monomial.clone();
            for atom in divisor_monomial {
                let at = rest.iter().position(|a| a == atom)?;
                rest.remove(at);
            }
            terms.insert(rest, coefficient / divisor_coefficient);
        }
        Some(Dim { terms })
    }

    /// Replaces symbols by dimensions (model arguments by their values, say).
    pub fn substitute(&self, values: &dyn Fn(&str) -> Option<Dim>) -> Result<Dim, Overflow> {
        let mut result = Dim::default();
        for (monomial, coefficient) in &self.terms {
            let mut term = Dim::constant(*coefficient);
            for atom in monomial {
                let factor = match atom {
                    Atom::Symbol(name) => values(name).unwrap_or_else(|| Dim::symbol(name)),
                    Atom::FloorDiv(inner, d) => {
                        inner.substitute(values)?.floor_div(&Dim::constant(*d)).expect("d is a nonzero constant")
                    }
                };
                term = term.checked_mul(&factor)?;
            }
            result = result.checked_add(&term)?;
        }
        Ok(result)
    }

    /// The symbols this dimension mentions.
    pub fn symbols(&self) -> Vec<String> {
        let mut out = Vec::new();
        for monomial in self.terms.keys() {
            for atom in monomial {
                match atom {
                    Atom::Symbol(name) => {
                        if !out.contains(name) {
                            out.push(name.clone());
                        }
                    }
                    Atom::FloorDiv(inner, _) => {
                        for name in inner.symbols() {
                            if !out.contains(&name) {
                                out.push(name);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Whether the dimension is certainly at most zero: a constant `<= 0`.
    pub fn is_nonpositive(&self) -> bool {
        self.as_const().is_some_and(|v| v <= 0)
    }

    fn is_single_term(&self) -> bool {
        self.terms.len() <= 1
    }
}

impl From<i128> for Dim {
    fn from(value: i128) -> Self {
        Dim::constant(value)
    }
}

fn write_atom(f: &mut fmt::Formatter<'_>, atom: &Atom) -> fmt::Result {
    match atom {
        Atom::Symbol(name) => f.write_str(name),
        Atom::FloorDiv(inner, d) => write!(f, "floor(({inner}) / {d})"),
    }
}

impl fmt::Display for Dim {
    /// `2·hidden + 1`, `B`, `28`; symbols in their canonical order, constant last.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        // Higher-degree terms first, the constant last.
        let mut terms: Vec<(&Monomial, &i128)> = self.terms.iter().collect();
        terms.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
        for (i, (monomial, &coefficient)) in terms.into_iter().enumerate() {
            let magnitude = coefficient.abs();
            if i == 0 {
                if coefficient < 0 {
                    f.write_str("-")?;
                }
            } else {
                f.write_str(if coefficient < 0 { " - " } else { " + " })?;
            }
            if monomial.is_empty() {
                write!(f, "{magnitude}")?;
                continue;
            }
            if magnitude != 1 {
                write!(f, "{magnitude}·")?;
            }
            // Repeated factors print as powers: `width^2·B`.
            let mut j = 0;
            while j < monomial.len() {
                let run = monomial[j..].iter().take_while(|a| **a == monomial[j]).count();
                if j > 0 {
                    f.write_str("·")?;
                }
                write_atom(f, &monomial[j])?;
                if run > 1 {
                    write!(f, "^{run}")?;
                }
                j += run;
            }
        }
        Ok(())
    }
}

impl Dim {
    /// The dimension as a factor in a product: parenthesised if it is a sum.
    pub fn factor_string(&self) -> String {
        if self.is_single_term() { self.to_string() } else { format!("({self})") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: i128) -> Dim {
        Dim::constant(v)
    }

    #[test]
    fn canonical_forms_compare_equal() {
        let b = Dim::symbol("B");
        let h = Dim::symbol("hidden");
        let left = b.checked_mul(&h).unwrap().checked_add(&h.checked_mul(&c(2)).unwrap()).unwrap();
        let right = h.checked_mul(&b.checked_add(&c(2)).unwrap()).unwrap();
        assert_eq!(left, right);
        assert_eq!(left.to_string(), "B·hidden + 2·hidden");
        assert_eq!(c(3).checked_sub(&c(3)).unwrap(), Dim::default());
    }

    #[test]
    fn floor_division() {
        assert_eq!(c(7).floor_div(&c(2)), Some(c(3)));
        assert_eq!(c(-7).floor_div(&c(2)), Some(c(-4)));
        let h = Dim::symbol("H");
        let even = h.checked_mul(&c(4)).unwrap();
        assert_eq!(even.floor_div(&c(2)).unwrap().to_string(), "2·H");
        let odd = h.checked_add(&c(1)).unwrap().floor_div(&c(2)).unwrap();
        assert_eq!(odd.to_string(), "floor((H + 1) / 2)");
        assert_eq!(odd.substitute(&|_| Some(c(27))).unwrap(), c(14));
        let eight_b = Dim::symbol("B").checked_mul(&c(8)).unwrap();
        assert_eq!(eight_b.floor_div(&Dim::symbol("B")), Some(c(8)));
        assert_eq!(c(1).floor_div(&c(0)), None);
    }

    #[test]
    fn overflow_is_an_error() {
        let big = c(u64::MAX as i128);
        assert_eq!(big.checked_add(&c(1)), Err(Overflow));
        assert_eq!(big.checked_mul(&c(2)), Err(Overflow));
        assert!(big.checked_mul(&c(1)).is_ok());
    }

    #[test]
    fn the_window_formula_gives_the_lectures_output_sizes() {
        let c = Dim::constant;
        let out = |n, k, s, p| window(&c(n), &c(k), &c(s), &c(p)).map(|w| w.out);
        // 7x7 with a 3x3 filter: 5, and 3 with stride 2; 32 with 5x5, pad 2: 32.
        assert_eq!(out(7, 3, 1, 0), Ok(c(5)));
        assert_eq!(out(7, 3, 2, 0), Ok(c(3)));
        assert_eq!(out(32, 5, 1, 2), Ok(c(32)));
        // Not tiling: floor((8 - 3) / 2) + 1 = 3.
        assert_eq!(out(8, 3, 2, 0), Ok(c(3)));
        assert_eq!(out(7, 3, 0, 0), Err(WindowError::Stride));
        let symbolic = window(&Dim::symbol("H"), &c(3), &c(1), &c(1)).unwrap();
        assert_eq!(symbolic.out, Dim::symbol("H"));
    }
}
