//! A parser for the IR's text form, the inverse of `print`: filetests write their input as
//! IR text, and printing what was parsed gives the same text back.

use super::ops::rules_named;
use super::{Function, Op, Type, Value};
use crate::shapes::{Dim, Shape};
use nnc_grammar::Span;
use std::collections::HashMap;

/// What is wrong with an IR text, and on which line (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses one function in the printed form.
pub fn parse_function(text: &str) -> Result<Function, ParseError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("").trim()))
        .filter(|(_, l)| !l.is_empty());
    let fail = |line: usize, message: String| ParseError { line, message };
    let (header_line, header) = lines.next().ok_or_else(|| fail(1, "no function".into()))?;
    let rest = header.strip_prefix("fn ").ok_or_else(|| fail(header_line, "expected `fn`".into()))?;
    let open = rest.find('(').ok_or_else(|| fail(header_line, "expected `(`".into()))?;
    let name = rest[..open].trim();
    let close = matching(rest, open).ok_or_else(|| fail(header_line, "expected `)`".into()))?;
    let mut f = Function::new(name, Span::default());
    let mut values: HashMap<String, Value> = HashMap::new();
    for param in split_top(&rest[open + 1..close]) {
        let (pname, ty) = param.split_once(':').ok_or_else(|| fail(header_line, format!("`{param}` has no type")))?;
        let ty = parse_type(ty.trim()).map_err(|m| fail(header_line, m))?;
        let value = f.param(pname.trim(), ty);
        values.insert(pname.trim().to_string(), value);
    }
    let after = rest[close + 1..].trim();
    let results_text = after
        .strip_prefix("->")
        .and_then(|r| r.trim().strip_suffix('{'))
        .ok_or_else(|| fail(header_line, "expected `-> ... {`".into()))?
        .trim();
    let results_text = results_text.strip_prefix('(').and_then(|r| r.strip_suffix(')')).unwrap_or(results_text);
    let result_names: Vec<String> =
        split_top(results_text).iter().map(|r| r.split_once(':').map_or("", |(n, _)| n.trim()).to_string()).collect();

    for (line, text) in lines {
        if text == "}" {
            break;
        }
        if let Some(rets) = text.strip_prefix("ret ") {
            for r in split_top(rets) {
                let value = operand(&mut f, &values, r.trim()).map_err(|m| fail(line, m))?;
                f.results.push(value);
            }
            continue;
        }
        let (target, expr) = text.split_once(" = ").ok_or_else(|| fail(line, "expected `name = op args`".into()))?;
        let expr = expr.trim();
        let op_end = expr.find([' ', '[']).unwrap_or(expr.len());
        let op_name = &expr[..op_end];
        let mut rest = expr[op_end..].trim_start();
        let mut attrs = "";
        if rest.starts_with('[') {
            let end = matching(rest, 0).ok_or_else(|| fail(line, "unclosed `[`".into()))?;
            attrs = &rest[1..end];
            rest = rest[end + 1..].trim();
        }
        let op = op_of(op_name, attrs).map_err(|m| fail(line, m))?;
        let args: Vec<Value> = split_top(rest)
            .iter()
            .map(|a| operand(&mut f, &values, a.trim()))
            .collect::<Result<_, _>>()
            .map_err(|m| fail(line, m))?;
        let shapes: Vec<&Shape> = args.iter().map(|&a| &f.ty(a).shape).collect();
        op.shape(&shapes).map_err(|m| fail(line, format!("`{target}`: {m}")))?;
        let value = f.push_named(op, &args, Span::default(), target.trim());
        values.insert(target.trim().to_string(), value);
    }
    f.result_names = result_names;
    Ok(f)
}

/// The index of the bracket closing the one at `open`.
fn matching(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in text.char_indices().skip_while(|&(i, _)| i < open) {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits at commas outside brackets.
fn split_top(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !text[start..].trim().is_empty() {
        out.push(text[start..].trim());
    }
    out
}

fn operand(f: &mut Function, values: &HashMap<String, Value>, text: &str) -> Result<Value, String> {
    if let Some(&v) = values.get(text) {
        return Ok(v);
    }
    match text.parse::<f64>() {
        Ok(c) => Ok(f.push(Op::Const(c), &[], Span::default())),
        Err(_) => Err(format!("`{text}` is not defined")),
    }
}

fn parse_type(text: &str) -> Result<Type, String> {
    let dims = text.strip_prefix("f32").ok_or_else(|| format!("`{text}` is not a type"))?.trim();
    if dims.is_empty() {
        return Ok(Type::scalar());
    }
    Ok(Type::of(parse_shape(dims.strip_prefix('[').and_then(|d| d.strip_suffix(']')).ok_or("expected `[...]`")?)?))
}

fn parse_shape(text: &str) -> Result<Shape, String> {
    split_top(text).iter().map(|d| parse_dim(d)).collect::<Result<_, _>>().map(Shape)
}

/// A dimension as `Dim` prints it: sums of products of numbers, symbols with powers, and
/// `floor((...) / n)`.
fn parse_dim(text: &str) -> Result<Dim, String> {
    let text = text.trim();
    // Split at top-level `+` and ` - `.
    let mut total = Dim::default();
    let mut depth = 0;
    let mut start = 0;
    let mut sign = 1;
    let bytes: Vec<char> = text.chars().collect();
    let mut terms = Vec::new();
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '+' | '-' if depth == 0 && i > 0 && bytes[i - 1] == ' ' => {
                terms.push((sign, bytes[start..i].iter().collect::<String>()));
                sign = if c == '-' { -1 } else { 1 };
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push((sign, bytes[start..].iter().collect::<String>()));
    for (sign, term) in terms {
        let mut product = Dim::constant(sign);
        for factor in term.trim().split('·') {
            product = product.checked_mul(&parse_factor(factor.trim())?).map_err(|_| "too large")?;
        }
        total = total.checked_add(&product).map_err(|_| "too large")?;
    }
    Ok(total)
}

fn parse_factor(text: &str) -> Result<Dim, String> {
    if let Some(inner) = text.strip_prefix("floor((") {
        let (num, den) = inner.rsplit_once(") / ").ok_or_else(|| format!("`{text}`"))?;
        let den: i128 = den.trim_end_matches(')').parse().map_err(|_| format!("`{text}`"))?;
        return parse_dim(num)?.floor_div(&Dim::constant(den)).ok_or_else(|| format!("`{text}`"));
    }
    if let Ok(v) = text.parse::<i128>() {
        return Ok(Dim::constant(v));
    }
    let (base, power) = match text.split_once('^') {
        Some((b, p)) => (b, p.parse::<u32>().map_err(|_| format!("`{text}`"))?),
        None => (text, 1),
    };
    if base.is_empty() || !base.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(format!("`{text}` is not a dimension"));
    }
    let symbol = Dim::symbol(base);
    (1..power).try_fold(symbol.clone(), |acc, _| acc.checked_mul(&symbol).map_err(|_| "too large".to_string()))
}

/// `3x3` as a pair.
fn pair(text: &str) -> Result<(usize, usize), String> {
    let (a, b) = text.split_once('x').ok_or_else(|| format!("`{text}` is not `AxB`"))?;
    Ok((a.trim().parse().map_err(|_| format!("`{text}`"))?, b.trim().parse().map_err(|_| format!("`{text}`"))?))
}

/// Comma-separated numbers, such as a literal's shape or values.
pub(crate) fn numbers<T: std::str::FromStr>(text: &str) -> Result<Vec<T>, String> {
    split_top(text).iter().map(|d| d.parse().map_err(|_| format!("`{d}`"))).collect()
}

/// The text in an op's brackets, which the op's rules read its attributes from: `key=value`
/// pairs (`axis=1`, `stride=2x2`), a shape or a dimension, or a literal's data.
pub(crate) struct Attributes<'a> {
    op: &'a str,
    text: &'a str,
    keys: HashMap<&'a str, &'a str>,
}

impl<'a> Attributes<'a> {
    fn new(op: &'a str, text: &'a str) -> Self {
        let keys =
            split_top(text).into_iter().filter_map(|a| a.split_once('=')).map(|(k, v)| (k.trim(), v.trim())).collect();
        Attributes { op, text, keys }
    }

    /// The whole text between the brackets.
    pub fn text(&self) -> &'a str {
        self.text
    }

    fn get(&self, key: &str) -> Result<&'a str, String> {
        self.keys.get(key).copied().ok_or_else(|| format!("`{}` needs `{key}=`", self.op))
    }

    /// `axis=n`, which may be absent.
    pub fn axis(&self) -> Result<Option<usize>, String> {
        self.keys.get("axis").map(|v| v.parse().map_err(|_| format!("axis `{v}`"))).transpose()
    }

    /// `axis=n`, which must be there.
    pub fn required_axis(&self) -> Result<usize, String> {
        self.axis()?.ok_or_else(|| format!("`{}` needs `axis=`", self.op))
    }

    /// `key=n`.
    pub fn number(&self, key: &str) -> Result<usize, String> {
        self.get(key)?.parse().map_err(|_| format!("`{key}` must be a number"))
    }

    /// `key=AxB`.
    pub fn pair(&self, key: &str) -> Result<(usize, usize), String> {
        pair(self.get(key)?)
    }

    /// The text as a shape: `B, 64`.
    pub fn shape(&self) -> Result<Shape, String> {
        parse_shape(self.text)
    }

    /// The text as a dimension: `B`.
    pub fn dim(&self) -> Result<Dim, String> {
        parse_dim(self.text)
    }
}

fn op_of(name: &str, attrs: &str) -> Result<Op, String> {
    let rules = rules_named(name).ok_or_else(|| format!("unknown op `{name}`"))?;
    (rules.parse)(&Attributes::new(name, attrs))
}

#[cfg(test)]
mod tests {
    use super::super::ops::ALL;
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_op_reads_back_the_attributes_it_writes() {
        // Constants have no instruction of their own in the text: they are written as operands.
        for op in Op::samples().into_iter().filter(|op| !matches!(op, Op::Const(_))) {
            let text = op.attributes();
            let inside = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(&text);
            assert_eq!(op_of(op.name(), inside), Ok(op.clone()), "`{}{text}`", op.name());
        }
    }

    #[test]
    fn every_op_is_listed_once_under_its_own_name() {
        let samples = Op::samples();
        for op in &samples {
            assert!(ALL.iter().any(|rules| std::ptr::eq(*rules, op.rules())), "`{}` is not listed", op.name());
        }
        let names: HashSet<&str> = ALL.iter().map(|rules| rules.name).collect();
        assert_eq!((names.len(), ALL.len()), (samples.len(), samples.len()));
    }
}
