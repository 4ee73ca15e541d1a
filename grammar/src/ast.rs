//! The syntax tree of a `.nn` file. Every node carries the byte span it was parsed from.
//!
//! The parser always produces a tree, whatever the input: where the input is broken, the
//! tree holds `Error` nodes and the diagnostics say why. The depth of every expression is
//! bounded by `layout::MAX_NESTING`, so recursive walks over the tree cannot overflow the
//! stack.

use crate::span::Span;
use serde::Serialize;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// `///` comment lines in front of a definition, joined with newlines.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Doc {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Item {
    Fn(FnDef),
    Model(ModelDef),
    Let(LetStmt),
    Query(Query),
    Train(TrainDef),
    /// Input that could not be parsed as an item; the diagnostics say why.
    Error(Span),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Fn(def) => def.span,
            Item::Model(def) => def.span,
            Item::Let(stmt) => stmt.span,
            Item::Query(query) => query.span,
            Item::Train(def) => def.span,
            Item::Error(span) => *span,
        }
    }
}

/// `fn f(x1, x2: [N]) = expr`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FnDef {
    pub doc: Option<Doc>,
    pub name: Ident,
    pub params: Vec<FnParam>,
    pub body: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FnParam {
    pub name: Ident,
    pub shape: Option<Shape>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ModelKind {
    /// `model`: a network built from layers.
    Model,
    /// `layer`: a building block, usually with explicit `param`s.
    Layer,
}

impl ModelKind {
    pub fn keyword(self) -> &'static str {
        match self {
            ModelKind::Model => "model",
            ModelKind::Layer => "layer",
        }
    }
}

/// `model Name(arg = default, ...) { statements }`, or the same with `layer`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelDef {
    pub doc: Option<Doc>,
    pub kind: ModelKind,
    pub name: Ident,
    pub params: Vec<ModelParam>,
    pub body: Vec<Stmt>,
    /// From `{` to `}`.
    pub body_span: Span,
    pub span: Span,
}

/// A model argument: `hidden = 32`, or `width` without a default.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelParam {
    pub name: Ident,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Stmt {
    Input(InputStmt),
    Param(ParamStmt),
    Let(LetStmt),
    /// A layer line (`linear(10)`, `relu`, `Mlp(hidden = 64)`) or, in a graph-style body,
    /// the expression that gives the output.
    Expr(Expr),
    Error(Span),
}

impl Stmt {
    pub fn span(&self) -> Span {
        match self {
            Stmt::Input(stmt) => stmt.span,
            Stmt::Param(stmt) => stmt.span,
            Stmt::Let(stmt) => stmt.span,
            Stmt::Expr(expr) => expr.span,
            Stmt::Error(span) => *span,
        }
    }
}

/// `input [B, 64]` or `input x: [B, width]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputStmt {
    pub name: Option<Ident>,
    pub shape: Shape,
    pub span: Span,
}

/// `param w: [out, in] = normal(0, 0.01)`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamStmt {
    pub doc: Option<Doc>,
    pub name: Ident,
    pub shape: Shape,
    pub init: Option<Expr>,
    pub span: Span,
}

/// `let h = expr`, in a body or at the top level.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LetStmt {
    pub doc: Option<Doc>,
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// A shape: `[B, 1, 28, 28]`. Dimensions are integer expressions over symbols.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shape {
    pub dims: Vec<Expr>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum QueryKind {
    /// `eval f(2, 5)`: the value.
    Eval,
    /// `grad f(2, 5) [wrt x1]`: the gradient by reverse mode.
    Grad,
    /// `jvp f(2, 5) along [1, 0]`: a directional derivative by forward mode.
    Jvp,
    /// `jacobian f(2, 5)`
    Jacobian,
    /// `hessian f(2, 5)`
    Hessian,
}

impl QueryKind {
    pub fn keyword(self) -> &'static str {
        match self {
            QueryKind::Eval => "eval",
            QueryKind::Grad => "grad",
            QueryKind::Jvp => "jvp",
            QueryKind::Jacobian => "jacobian",
            QueryKind::Hessian => "hessian",
        }
    }
}

/// `eval f(2, 5)`, `grad f(2, 5) wrt x1`, `jvp f(2, 5) along [1, 0]`, ...
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Query {
    pub kind: QueryKind,
    pub keyword_span: Span,
    pub call: Expr,
    /// The arguments to differentiate by (`wrt x1, x2`); empty means all of them.
    pub wrt: Vec<Ident>,
    /// The tangent direction of a `jvp`.
    pub along: Option<Expr>,
    pub span: Span,
}

/// `train Model(args) on source(...) { key = value ... }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainDef {
    pub doc: Option<Doc>,
    pub keyword_span: Span,
    pub model: Expr,
    pub data: Expr,
    pub settings: Vec<Setting>,
    pub body_span: Span,
    pub span: Span,
}

/// `epochs = 20`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Setting {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// `^`
    Pow,
    /// `@`, the matrix product.
    MatMul,
    /// `|>`: `x |> f(a)` applies the layer or function `f` to `x`.
    Pipe,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Pow => "^",
            BinaryOp::MatMul => "@",
            BinaryOp::Pipe => "|>",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ExprKind {
    Int(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Name(String),
    /// `f(a, b, name = c)`
    Call {
        callee: Ident,
        args: Vec<Arg>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `-x`
    Neg(Box<Expr>),
    /// `x^T`
    Transpose(Box<Expr>),
    /// `[1, 2, 3]`, or nested for a matrix.
    Array(Vec<Expr>),
    /// `(3, 5)`, for pairs such as a kernel size.
    Tuple(Vec<Expr>),
    /// `(x)`, kept so that the formatter can print what was written.
    Paren(Box<Expr>),
    /// Input that could not be parsed as an expression; the diagnostics say why.
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Self {
        Expr { kind, span }
    }

    pub fn error(span: Span) -> Self {
        Expr { kind: ExprKind::Error, span }
    }

    /// The expressions directly inside this one, in source order.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::Str(_)
            | ExprKind::Name(_)
            | ExprKind::Error => Vec::new(),
            ExprKind::Call { args, .. } => args.iter().map(|arg| &arg.value).collect(),
            ExprKind::Binary { lhs, rhs, .. } => vec![lhs, rhs],
            ExprKind::Neg(inner) | ExprKind::Transpose(inner) | ExprKind::Paren(inner) => {
                vec![inner]
            }
            ExprKind::Array(items) | ExprKind::Tuple(items) => items.iter().collect(),
        }
    }

    /// Calls `visit` on this expression and every expression inside it, outermost first.
    pub fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Expr)) {
        visit(self);
        for child in self.children() {
            child.walk(visit);
        }
    }

    /// The name and arguments of a use of a callable: `name(args)`, or `name` alone with
    /// no arguments (`relu`, `mse`, `zeros`).
    pub fn call_parts(&self) -> Option<(&str, &[Arg])> {
        match &self.unparenthesized().kind {
            ExprKind::Name(name) => Some((name, &[])),
            ExprKind::Call { callee, args } => Some((&callee.name, args)),
            _ => None,
        }
    }

    /// The expression without any parentheses around it.
    pub fn unparenthesized(&self) -> &Expr {
        let mut expr = self;
        while let ExprKind::Paren(inner) = &expr.kind {
            expr = inner;
        }
        expr
    }
}
