//! The catalogue of diagnostic codes: each code's meaning, severity and a short example.
//!
//! `docs/errors.md` documents every code in this table, and a test checks that each example
//! below really produces its code, so the catalogue, the docs and the compiler stay in step.

use crate::diagnostic::Severity;
use serde::{Serialize, Serializer};

macro_rules! codes {
    ($($variant:ident = $id:literal, $severity:ident, $title:literal, $example:expr;)*) => {
        /// A stable diagnostic code such as `E0003`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as printed: `E0003`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $id,)* }
            }

            /// One line saying what the code means.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }

            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }

            /// A small `.nn` program (as bytes: one example is not UTF-8) that produces this
            /// diagnostic.
            pub fn example(self) -> Vec<u8> {
                match self { $(Code::$variant => Vec::from($example),)* }
            }
        }
    };
}

codes! {
    InvalidCharacter = "E0001", Error, "a character that no token of the language starts with",
        "fn f(x) = x $ 2\n";
    UnterminatedString = "E0002", Error, "a string literal without its closing quote",
        "model M {\n    input [B, 2]\n    linear(1)\n}\ntrain M on xor(samples = 100) {\n    loss = bce\n    save = \"m.safetensors\n}\n";
    UnclosedDelimiter = "E0003", Error, "an opening bracket that is never closed",
        "fn f(x) = sin(x\n";
    UnexpectedCloser = "E0004", Error, "a closing bracket that closes nothing",
        "fn f(x) = x)\n";
    UnexpectedToken = "E0005", Error, "a token the grammar does not allow at that place",
        "fn f(x) = x +\n";
    NestingTooDeep = "E0006", Error, "brackets or operators nested deeper than the parser's limit of 256",
        nesting_example();
    NumberOutOfRange = "E0007", Error, "a number literal too large to represent",
        "model M {\n    input [B, 4]\n    linear(99999999999999999999999)\n}\n";
    InvalidUtf8 = "E0008", Error, "bytes that are not valid UTF-8",
        &b"fn f(x) = x \xff\n"[..];
    MisspeltKeyword = "E0009", Error, "an identifier where a keyword belongs, close to that keyword",
        "modle Mlp {\n    input [B, 64]\n    linear(10)\n}\n";
    UnknownName = "E0101", Error, "a name that is not defined where it is used",
        "fn f(x1, x2) = x1 * x3\n";
    UnknownLayer = "E0102", Error, "a call of a layer or function that does not exist",
        "model M {\n    input [B, 64]\n    lineer(10)\n}\n";
    DuplicateDefinition = "E0103", Error, "a name defined twice in the same scope",
        "fn f(x) = x\nfn f(y) = y\n";
    WrongArgumentCount = "E0104", Error, "a layer, model or function called with too many or too few arguments",
        "model M {\n    input [B, 64]\n    linear()\n}\n";
    UnknownArgument = "E0105", Error, "a named argument that the layer or model does not take",
        "model M {\n    input [B, 1, 8, 8]\n    conv2d(8, kernel = 3, padding = 1)\n}\n";
    DuplicateArgument = "E0106", Error, "an argument given twice in one call",
        "model M {\n    input [B, 64]\n    linear(10, out_features = 10)\n}\n";
    MissingInput = "E0107", Error, "a model or layer without an `input` statement",
        "model M {\n    linear(10)\n}\n";
    MisplacedStatement = "E0108", Error, "a statement where it is not allowed, such as a second `input`",
        "model M {\n    input [B, 4]\n    input [B, 8]\n}\n";
    UnknownSetting = "E0109", Error, "a setting that a `train` block does not have",
        "model M {\n    input [B, 2]\n    linear(1)\n}\ntrain M on xor(samples = 100) {\n    loss = bce\n    epoch = 10\n}\n";
    WrongKind = "E0110", Error, "a name used as something it is not, such as a function trained as a model",
        "fn f(x) = x\ntrain f on xor(samples = 100) {\n    loss = bce\n}\n";
    RecursiveModel = "E0111", Error, "a model or function that uses itself, directly or through others",
        "model A {\n    input [B, 4]\n    A\n}\n";
    LayerNeedsInput = "E0112", Error, "a layer used where no input flows into it",
        "fn f(x) = relu\n";
    TensorInDimension = "E0113", Error, "a tensor value used where a number is needed, such as a layer size",
        "model M {\n    input x: [B, 4]\n    conv2d(8, kernel = x)\n}\n";
    WrongValue = "E0114", Error, "an argument or setting with the wrong kind of value, such as text where a number belongs",
        "model M {\n    input [B, 2]\n    linear(1)\n}\ntrain M on xor(samples = 100) {\n    loss = bce\n    epochs = \"ten\"\n}\n";
    LayerInputShape = "E0201", Error, "a layer given an input of a shape it cannot take",
        "model M {\n    input [B, 1, 28, 28]\n    conv2d(8, kernel = 3, pad = 1)\n    linear(10)\n}\n";
    FeatureMismatch = "E0202", Error, "a size that does not match the size of the input it is applied to",
        "model M {\n    input [B, 1, 28, 28]\n    conv2d(8, kernel = 3, pad = 1)\n    maxpool(2)\n    flatten\n    linear(1352, 10)\n}\n";
    BroadcastMismatch = "E0203", Error, "two shapes that do not broadcast together",
        "fn f(x: [3], y: [4]) = x + y\n";
    MatmulMismatch = "E0204", Error, "a matrix product whose inner dimensions differ",
        "fn f(a: [2, 3], b: [4, 5]) = a @ b\n";
    EmptyDimension = "E0205", Error, "a dimension that comes out zero or negative",
        "model M {\n    input [B, 1, 4, 4]\n    conv2d(8, kernel = 5)\n}\n";
    ReshapeMismatch = "E0206", Error, "a reshape whose element count differs from its input's",
        "model M {\n    input [B, 64]\n    reshape(1, 9, 9)\n}\n";
    TooLarge = "E0207", Error, "a size too large to compute with or to allocate",
        "model M {\n    input [B, 64]\n    linear(10^12)\n}\n";
    AxisOutOfRange = "E0208", Error, "an axis that the tensor does not have",
        "fn f(x: [3, 4]) = sum(x, axis = 2)\n";
    RaggedArray = "E0209", Error, "an array literal whose rows differ in shape",
        "let a = [[1, 2], [3]]\n";
    ArgumentShape = "E0210", Error, "an argument whose shape does not fit what the callee expects",
        "model Block(width) {\n    input x: [B, width]\n    x + linear(x, width)\n}\nmodel M {\n    input [B, 8]\n    Block(width = 4)\n}\n";
    StrideDropsInput = "W0201", Warning, "a stride or window that does not tile the input, so rows and columns are dropped",
        "model M {\n    input [B, 1, 7, 7]\n    conv2d(1, kernel = 3, stride = 3)\n}\n";
}

fn nesting_example() -> String {
    format!("fn f(x) = {}x{}\n", "(".repeat(300), ")".repeat(300))
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
