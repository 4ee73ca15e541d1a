//! Data sources of `train` blocks: files (`csv`, `idx`, `npy`) and generated point sets
//! (`xor`, `moons`, ...). Each builds the typed source from its settings.

use super::{ArgKind, Entry, Form, Kind, Param, Read, builtin, p};
use crate::train::{DataSource, Generator, LabelColumn};

const SAMPLES: Param = p("samples", ArgKind::Int, Some("400"), "how many points to generate");
const NOISE: Param = p("noise", ArgKind::Real, Some("0.1"), "standard deviation of the noise added to each point");
const SEED: Param = p("seed", ArgKind::Int, Some("0"), "seed of the generator");

pub static ENTRIES: &[Entry] = &[
    Entry {
        builtin: builtin(
            "csv",
            Kind::DataSource,
            &[
                p("path", ArgKind::Str, None, "the file, relative to the `.nn` file; `.gz` files are decompressed"),
                p(
                    "label",
                    ArgKind::IntOrWord(&["last", "first"]),
                    Some("last"),
                    "the label column: its index, `first` or `last`",
                ),
                p("scale", ArgKind::Real, Some("1"), "factor applied to every feature"),
                p("header", ArgKind::Bool, Some("detected"), "whether the first line is a header"),
            ],
            "Rows of a CSV file (optionally gzipped): numeric features and one integer label column.",
        ),
        form: Form::DataSource(csv),
    },
    Entry {
        builtin: builtin(
            "idx",
            Kind::DataSource,
            &[
                p("images", ArgKind::Str, None, "the IDX images file (MNIST format, optionally gzipped)"),
                p("labels", ArgKind::Str, None, "the IDX labels file"),
                p("scale", ArgKind::Real, Some("1/255"), "factor applied to every pixel"),
            ],
            "MNIST-style IDX files of images and labels.",
        ),
        form: Form::DataSource(idx),
    },
    Entry {
        builtin: builtin(
            "npy",
            Kind::DataSource,
            &[
                p("inputs", ArgKind::Str, None, "a NumPy `.npy` file of inputs (f32, f64, u8 or i64)"),
                p("labels", ArgKind::Str, None, "a `.npy` file of labels or targets"),
                p("scale", ArgKind::Real, Some("1"), "factor applied to every input"),
            ],
            "Inputs and labels from NumPy `.npy` files.",
        ),
        form: Form::DataSource(npy),
    },
    Entry {
        builtin: builtin(
            "xor",
            Kind::DataSource,
            &[SAMPLES, NOISE, SEED],
            "Points around the four corners of a square, labelled by XOR of their quadrant: not linearly separable.",
        ),
        form: Form::DataSource(|r| generated(r, Generator::Xor)),
    },
    Entry {
        builtin: builtin("moons", Kind::DataSource, &[SAMPLES, NOISE, SEED], "Two interleaving half circles."),
        form: Form::DataSource(|r| generated(r, Generator::Moons)),
    },
    Entry {
        builtin: builtin("circles", Kind::DataSource, &[SAMPLES, NOISE, SEED], "A small circle inside a large one."),
        form: Form::DataSource(|r| generated(r, Generator::Circles)),
    },
    Entry {
        builtin: builtin(
            "spirals",
            Kind::DataSource,
            &[SAMPLES, p("classes", ArgKind::Int, Some("2"), "number of spiral arms"), NOISE, SEED],
            "Interleaved spiral arms, one class each.",
        ),
        form: Form::DataSource(|r| generated(r, Generator::Spirals)),
    },
    Entry {
        builtin: builtin(
            "blobs",
            Kind::DataSource,
            &[SAMPLES, p("classes", ArgKind::Int, Some("3"), "number of blobs"), NOISE, SEED],
            "Gaussian blobs, one class each.",
        ),
        form: Form::DataSource(|r| generated(r, Generator::Blobs)),
    },
];

fn csv(r: &mut dyn Read) -> Option<DataSource> {
    let label = match r.word("label").as_deref() {
        Some("first") => LabelColumn::First,
        Some(_) => LabelColumn::Last,
        None => LabelColumn::Index(r.whole("label", 0.0)?),
    };
    let scale = r.real("scale")?;
    Some(DataSource::Csv { path: r.text("path")?, label, scale, header: r.flag("header") })
}

fn idx(r: &mut dyn Read) -> Option<DataSource> {
    let scale = r.real("scale")?;
    Some(DataSource::Idx { images: r.text("images")?, labels: r.text("labels")?, scale })
}

fn npy(r: &mut dyn Read) -> Option<DataSource> {
    let scale = r.real("scale")?;
    Some(DataSource::Npy { inputs: r.text("inputs")?, labels: r.text("labels")?, scale })
}

/// A generated point set; those without a `classes` setting have two classes.
fn generated(r: &mut dyn Read, kind: Generator) -> Option<DataSource> {
    let samples = r.whole("samples", 1.0)?;
    let classes = match kind {
        Generator::Spirals | Generator::Blobs => r.whole("classes", 1.0)?,
        Generator::Xor | Generator::Moons | Generator::Circles => 2,
    };
    let seed = r.whole("seed", 0.0)? as u64;
    let noise = r.real("noise")?;
    Some(DataSource::Generated { kind, samples, noise, classes, seed })
}
