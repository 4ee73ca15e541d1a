//! Data sources named in `train` blocks: CSV files (optionally gzipped) and the built-in
//! 2-D generators. Every problem with a file is an error that names the file, the row and
//! the field.

use nnc_compiler::train::Generator;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A labelled data set: `n` examples of `dim` features each, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub features: Vec<f64>,
    pub labels: Vec<f64>,
    pub n: usize,
    pub dim: usize,
    /// Number of classes (largest label + 1) for classification.
    pub classes: usize,
    /// Where the data came from, for messages.
    pub origin: String,
}

/// What went wrong reading data.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DataError {
    #[error("cannot read `{path}`: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error("`{path}` is not a valid gzip file: {message}")]
    BadGzip { path: PathBuf, message: String },
    #[error("`{path}` line {line}: {message}")]
    BadRow { path: PathBuf, line: usize, message: String },
    #[error("`{path}` has no data rows")]
    Empty { path: PathBuf },
    #[error("{0}")]
    Other(String),
}

/// Reads a file, decompressing it when it starts with the gzip magic bytes.
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes =
        std::fs::read(path).map_err(|e| DataError::Unreadable { path: path.to_path_buf(), message: e.to_string() })?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::BadGzip { path: path.to_path_buf(), message: e.to_string() })?;
        return Ok(out);
    }
    Ok(bytes)
}

pub use nnc_compiler::train::LabelColumn;

/// Loads a CSV file of numbers with one integer label column. A first line with a cell that
/// is not a number is a header and is skipped (or kept out by `header = Some(true)`).
pub fn load_csv(path: &Path, label: LabelColumn, scale: f64, header: Option<bool>) -> Result<Dataset, DataError> {
    let bytes = read_maybe_gzip(path)?;
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(&bytes[..]);
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut width: Option<usize> = None;
    let mut n = 0;
    for (index, record) in reader.records().enumerate() {
        let line = index + 1;
        let record =
            record.map_err(|e| DataError::BadRow { path: path.to_path_buf(), line, message: e.to_string() })?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let numeric = record.iter().all(|cell| cell.parse::<f64>().is_ok());
        if index == 0 && (header == Some(true) || (header.is_none() && !numeric)) {
            continue;
        }
        let columns = record.len();
        match width {
            None => width = Some(columns),
            Some(w) if w != columns => {
                return Err(DataError::BadRow {
                    path: path.to_path_buf(),
                    line,
                    message: format!("has {columns} fields, but the rows before it have {w}"),
                });
            }
            _ => {}
        }
        if columns < 2 {
            return Err(DataError::BadRow {
                path: path.to_path_buf(),
                line,
                message: "needs at least one feature and a label".into(),
            });
        }
        let label_at = match label {
            LabelColumn::First => 0,
            LabelColumn::Last => columns - 1,
            LabelColumn::Index(i) if i < columns => i,
            LabelColumn::Index(i) => {
                return Err(DataError::BadRow {
                    path: path.to_path_buf(),
                    line,
                    message: format!("has no column {i} for the label (it has {columns})"),
                });
            }
        };
        for (column, cell) in record.iter().enumerate() {
            let value: f64 = cell.parse().map_err(|_| DataError::BadRow {
                path: path.to_path_buf(),
                line,
                message: format!("field {} is `{cell}`, not a number", column + 1),
            })?;
            if !value.is_finite() {
                return Err(DataError::BadRow {
                    path: path.to_path_buf(),
                    line,
                    message: format!("field {} is not finite", column + 1),
                });
            }
            if column == label_at {
                if value < 0.0 || value.fract() != 0.0 {
                    return Err(DataError::BadRow {
                        path: path.to_path_buf(),
                        line,
                        message: format!("the label `{cell}` is not a class number 0, 1, 2, ..."),
                    });
                }
                labels.push(value);
            } else {
                features.push(value * scale);
            }
        }
        n += 1;
    }
    let Some(width) = width else { return Err(DataError::Empty { path: path.to_path_buf() }) };
    let classes = labels.iter().fold(0.0f64, |a, &b| a.max(b)) as usize + 1;
    Ok(Dataset { features, labels, n, dim: width - 1, classes, origin: path.display().to_string() })
}

/// A normal sample by Box-Muller.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The built-in 2-D data sets, as scikit-learn draws them.
pub fn generate(kind: Generator, samples: usize, noise: f64, classes: usize, seed: u64) -> Result<Dataset, DataError> {
    let name = kind.name();
    if samples == 0 {
        return Err(DataError::Other(format!("`{name}` needs at least one sample")));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(2 * samples);
    let mut labels = Vec::with_capacity(samples);
    let classes = match kind {
        Generator::Xor | Generator::Moons | Generator::Circles => 2,
        Generator::Spirals | Generator::Blobs => classes.max(1),
    };
    for i in 0..samples {
        let (x, y, label) = match kind {
            Generator::Xor => {
                let (x, y): (f64, f64) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
                (x, y, if (x > 0.0) != (y > 0.0) { 1.0 } else { 0.0 })
            }
            Generator::Moons => {
                let t = std::f64::consts::PI * rng.random::<f64>();
                if i % 2 == 0 { (t.cos(), t.sin(), 0.0) } else { (1.0 - t.cos(), 0.5 - t.sin(), 1.0) }
            }
            Generator::Circles => {
                let t = 2.0 * std::f64::consts::PI * rng.random::<f64>();
                let r = if i % 2 == 0 { 1.0 } else { 0.5 };
                (r * t.cos(), r * t.sin(), (i % 2) as f64)
            }
            Generator::Spirals => {
                let class = i % classes;
                let t = rng.random::<f64>();
                let angle = 4.0 * t + 2.0 * std::f64::consts::PI * class as f64 / classes as f64;
                (t * angle.cos(), t * angle.sin(), class as f64)
            }
            Generator::Blobs => {
                let class = i % classes;
                let angle = 2.0 * std::f64::consts::PI * class as f64 / classes as f64;
                (2.0 * angle.cos() + 0.5 * normal(&mut rng), 2.0 * angle.sin() + 0.5 * normal(&mut rng), class as f64)
            }
        };
        features.push(x + noise * normal(&mut rng));
        features.push(y + noise * normal(&mut rng));
        labels.push(label);
    }
    Ok(Dataset {
        features,
        labels,
        n: samples,
        dim: 2,
        classes,
        origin: format!("{name}(samples = {samples}, noise = {noise}, seed = {seed})"),
    })
}

impl Dataset {
    /// Splits into a training and a test set, shuffled by `seed`: the first `fraction` of
    /// the shuffled examples train.
    pub fn split(&self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let mut order: Vec<usize> = (0..self.n).collect();
        shuffle(&mut order, &mut ChaCha8Rng::seed_from_u64(seed));
        let cut = ((self.n as f64) * fraction).round().clamp(0.0, self.n as f64) as usize;
        (self.subset(&order[..cut]), self.subset(&order[cut..]))
    }

    pub fn subset(&self, rows: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(rows.len() * self.dim);
        for &r in rows {
            features.extend_from_slice(&self.features[r * self.dim..(r + 1) * self.dim]);
        }
        Dataset {
            features,
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
            n: rows.len(),
            dim: self.dim,
            classes: self.classes,
            origin: self.origin.clone(),
        }
    }
}

impl Dataset {
    /// Copies the examples `rows` into batch buffers: their features, and their targets as
    /// a loss takes them: the label itself (`width` 1) or a one-hot row of `width`.
    pub fn gather(&self, rows: &[usize], features: &mut [f32], targets: &mut [f32], width: usize) {
        for (i, &r) in rows.iter().enumerate() {
            let source = &self.features[r * self.dim..(r + 1) * self.dim];
            for (slot, &v) in features[i * self.dim..(i + 1) * self.dim].iter_mut().zip(source) {
                *slot = v as f32;
            }
            let label = self.labels[r];
            if width == 1 {
                targets[i] = label as f32;
            } else {
                for (k, slot) in targets[i * width..(i + 1) * width].iter_mut().enumerate() {
                    *slot = if k == label as usize { 1.0 } else { 0.0 };
                }
            }
        }
    }
}

/// Fisher-Yates with a seeded generator, so a run is reproducible.
pub fn shuffle(items: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

/// An array read from a file: its dimensions and values.
pub struct Array {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

fn bad(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Other(format!("`{}`: {}", path.display(), message.into()))
}

/// Reads an IDX file (the MNIST format, optionally gzipped): a magic number whose third
/// byte gives the element type and whose fourth the number of dimensions, the dimensions as
/// big-endian 32-bit numbers, then the elements.
pub fn load_idx(path: &Path) -> Result<Array, DataError> {
    let bytes = read_maybe_gzip(path)?;
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        let magic = bytes.get(..4).map(|m| u32::from_be_bytes([m[0], m[1], m[2], m[3]]));
        return Err(bad(
            path,
            format!(
                "is not an IDX file (magic number {}; IDX files start with 0x0000 then a type byte)",
                magic.map_or("missing".into(), |m| m.to_string())
            ),
        ));
    }
    let (kind, rank) = (bytes[2], bytes[3] as usize);
    let width = match kind {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        other => return Err(bad(path, format!("has the unknown IDX element type 0x{other:02X}"))),
    };
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(bad(path, "is truncated in its header"));
    }
    let shape: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(path, "declares more elements than fit in memory"))?;
    let expected = count
        .checked_mul(width)
        .and_then(|n| n.checked_add(header))
        .ok_or_else(|| bad(path, "declares more elements than fit in memory"))?;
    if bytes.len() != expected {
        return Err(bad(
            path,
            format!(
                "should hold {count} elements ({expected} bytes) for shape {shape:?} but has {} bytes",
                bytes.len()
            ),
        ));
    }
    let data = &bytes[header..];
    let values = match kind {
        0x08 => data.iter().map(|&b| b as f64).collect(),
        0x09 => data.iter().map(|&b| b as i8 as f64).collect(),
        0x0B => data.chunks_exact(2).map(|c| i16::from_be_bytes([c[0], c[1]]) as f64).collect(),
        0x0C => data.chunks_exact(4).map(|c| i32::from_be_bytes(c.try_into().expect("4 bytes")) as f64).collect(),
        0x0D => data.chunks_exact(4).map(|c| f32::from_be_bytes(c.try_into().expect("4 bytes")) as f64).collect(),
        _ => data.chunks_exact(8).map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes"))).collect(),
    };
    Ok(Array { shape, values })
}

/// Reads a NumPy `.npy` file of f32, f64, u8 or i64 in C order.
pub fn load_npy(path: &Path) -> Result<Array, DataError> {
    let bytes = read_maybe_gzip(path)?;
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
        return Err(bad(path, "is not a NumPy .npy file (it does not start with \\x93NUMPY)"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize, 12),
        v => return Err(bad(path, format!("has the unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .map(String::from_utf8_lossy)
        .ok_or_else(|| bad(path, "is truncated in its header"))?;
    let field = |key: &str| -> Option<String> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find([',', '}'])? };
        Some(rest[..end].trim().trim_matches('\'').to_string())
    };
    let descr = field("descr").ok_or_else(|| bad(path, "has no 'descr' in its header"))?;
    if field("fortran_order").as_deref() == Some("True") {
        return Err(bad(path, "is in Fortran order; save it with numpy.ascontiguousarray first"));
    }
    let shape_text = field("shape").ok_or_else(|| bad(path, "has no 'shape' in its header"))?;
    let shape: Vec<usize> = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad(path, format!("has the shape {shape_text}"))))
        .collect::<Result<_, _>>()?;
    let data = &bytes[start + header_len..];
    let count: usize = shape.iter().product();
    let (width, read): (usize, fn(&[u8]) -> f64) = match descr.as_str() {
        "<f4" => (4, |c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64),
        "<f8" => (8, |c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
        "|u1" | "<u1" => (1, |c| c[0] as f64),
        "<i8" => (8, |c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64),
        other => {
            return Err(bad(path, format!("holds `{other}`; nnc reads f32 (<f4), f64 (<f8), u8 (|u1) and i64 (<i8)")));
        }
    };
    if data.len() != count * width {
        return Err(bad(
            path,
            format!("should hold {count} elements of {width} bytes for shape {shape:?} but has {} bytes", data.len()),
        ));
    }
    Ok(Array { shape, values: data.chunks_exact(width).map(read).collect() })
}

/// A data set from an array of inputs (first dimension the examples) and an array of labels.
pub fn from_arrays(inputs: Array, labels: Array, scale: f64, origin: String) -> Result<Dataset, DataError> {
    let n = inputs.shape.first().copied().unwrap_or(0);
    if labels.values.len() != n {
        return Err(DataError::Other(format!("{origin}: {n} inputs but {} labels", labels.values.len())));
    }
    if n == 0 {
        return Err(DataError::Other(format!("{origin} has no examples")));
    }
    if let Some((i, l)) = labels.values.iter().enumerate().find(|(_, l)| **l < 0.0 || l.fract() != 0.0) {
        return Err(DataError::Other(format!("{origin}: label {i} is {l}, not a class number 0, 1, 2, ...")));
    }
    let classes = labels.values.iter().fold(0.0f64, |a, &b| a.max(b)) as usize + 1;
    let dim = inputs.values.len() / n;
    Ok(Dataset {
        features: inputs.values.into_iter().map(|v| v * scale).collect(),
        labels: labels.values,
        n,
        dim,
        classes,
        origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_digits_load() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data/digits.csv.gz");
        let data = load_csv(&path, LabelColumn::Last, 1.0 / 16.0, None).unwrap();
        assert_eq!((data.n, data.dim, data.classes), (1797, 64, 10));
        assert!(data.features.iter().all(|v| (0.0..=1.0).contains(v)));
        let iris = load_csv(&path.with_file_name("iris.csv"), LabelColumn::Last, 1.0, None).unwrap();
        assert_eq!((iris.n, iris.dim, iris.classes), (150, 4, 3));
    }

    #[test]
    fn generators_are_reproducible_and_split_by_seed() {
        let a = generate(Generator::Xor, 100, 0.1, 2, 7).unwrap();
        assert_eq!(a, generate(Generator::Xor, 100, 0.1, 2, 7).unwrap());
        assert_ne!(a, generate(Generator::Xor, 100, 0.1, 2, 8).unwrap());
        let (train, test) = a.split(0.8, 1);
        assert_eq!((train.n, test.n), (80, 20));
    }
}
