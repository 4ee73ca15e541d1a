//! Data sources named in `train` blocks: CSV files (optionally gzipped) and the built-in
//! 2-D generators. Every problem with a file is an error that names the file, the row and
//! the field.

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

/// Which column holds the label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelColumn {
    First,
    Last,
    Index(usize),
}

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
pub fn generate(name: &str, samples: usize, noise: f64, classes: usize, seed: u64) -> Result<Dataset, DataError> {
    if samples == 0 {
        return Err(DataError::Other(format!("`{name}` needs at least one sample")));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(2 * samples);
    let mut labels = Vec::with_capacity(samples);
    let classes = match name {
        "xor" | "moons" | "circles" => 2,
        _ => classes.max(1),
    };
    for i in 0..samples {
        let (x, y, label) = match name {
            "xor" => {
                let (x, y): (f64, f64) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
                (x, y, if (x > 0.0) != (y > 0.0) { 1.0 } else { 0.0 })
            }
            "moons" => {
                let t = std::f64::consts::PI * rng.random::<f64>();
                if i % 2 == 0 { (t.cos(), t.sin(), 0.0) } else { (1.0 - t.cos(), 0.5 - t.sin(), 1.0) }
            }
            "circles" => {
                let t = 2.0 * std::f64::consts::PI * rng.random::<f64>();
                let r = if i % 2 == 0 { 1.0 } else { 0.5 };
                (r * t.cos(), r * t.sin(), (i % 2) as f64)
            }
            "spirals" => {
                let class = i % classes;
                let t = rng.random::<f64>();
                let angle = 4.0 * t + 2.0 * std::f64::consts::PI * class as f64 / classes as f64;
                (t * angle.cos(), t * angle.sin(), class as f64)
            }
            "blobs" => {
                let class = i % classes;
                let angle = 2.0 * std::f64::consts::PI * class as f64 / classes as f64;
                (2.0 * angle.cos() + 0.5 * normal(&mut rng), 2.0 * angle.sin() + 0.5 * normal(&mut rng), class as f64)
            }
            other => return Err(DataError::Other(format!("`{other}` is not a built-in data set"))),
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

/// Fisher-Yates with a seeded generator, so a run is reproducible.
pub fn shuffle(items: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
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
        let a = generate("xor", 100, 0.1, 2, 7).unwrap();
        assert_eq!(a, generate("xor", 100, 0.1, 2, 7).unwrap());
        assert_ne!(a, generate("xor", 100, 0.1, 2, 8).unwrap());
        let (train, test) = a.split(0.8, 1);
        assert_eq!((train.n, test.n), (80, 20));
    }
}
