//! Graphviz DOT drawings of IR functions: the lecture's computational graph, with the
//! evaluation trace's names on the nodes and the shapes flowing along the edges, a model's
//! layers as clusters with their parameter counts, and the adjoint code of reverse mode
//! beside the primal graph, flowing back from the output to the inputs.
//!
//! The drawing is a function of the IR alone: nodes are named after value ids (`n3`) and
//! written in the order of the function's arguments and instructions, so the same function
//! always gives the same text.

use super::print::number;
use super::trace::Names;
use super::{Function, Op, Value};
use crate::shapes::{Dim, format_count};
use std::collections::HashMap;
use std::fmt::Write;

/// What a function's arguments are and how to lay its graph out.
#[derive(Clone, Debug, Default)]
pub struct GraphOptions {
    /// The heading above the graph, such as `f (examples/lecture.nn:4)`.
    pub title: Option<String>,
    /// How many leading arguments are inputs: all of a `fn`'s; a model's input `x`, and
    /// the targets `t` of a training loss. The arguments after them are parameters
    /// (weights), except dropout masks, which are inputs the runtime fills.
    pub inputs: usize,
    /// Name the inputs as the lecture numbers them, `x1 = v-1`, `x2 = v0`, and write them
    /// so in the expressions (for a `fn`; a model's arguments keep their own names).
    pub lecture_names: bool,
    /// When `f` is the adjoint code that `reverse` made from a primal function: how many
    /// values that function had. `reverse` builds on a clone of the primal function, so
    /// the values from this id on are the ones it added.
    pub primal_values: Option<usize>,
    /// A label for each of `f.layers`, such as `conv2d(8, kernel = 3, pad = 1)`.
    pub layer_labels: Vec<String>,
    /// Lay the graph out from left to right, as the lecture draws a function, instead of
    /// from top to bottom, which suits a model's stack of layers.
    pub left_to_right: bool,
}

/// What a value is, which decides how its node is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Input,
    Parameter,
    Constant,
    /// A constant with a name of its own, such as the seed `y_bar = 1` of reverse mode.
    NamedConstant,
    Computed,
}

/// The node attributes of each kind of value, in the primal graph and in the adjoint one.
fn style(kind: Kind, adjoint: bool) -> &'static str {
    match (kind, adjoint) {
        (Kind::Input, false) => r##"shape=box, style="rounded,filled", fillcolor="#dae8fc", color="#6c8ebf""##,
        (Kind::Parameter, _) => r##"shape=box, style=filled, fillcolor="#fff2cc", color="#d6b656""##,
        (Kind::Constant, _) => r#"shape=plaintext, fontsize=9, width=0, height=0, margin=0.02"#,
        (Kind::NamedConstant | Kind::Computed, false) => "shape=ellipse",
        // The adjoint's own values: its cotangent argument `y_bar` and what it computes.
        (Kind::Input, true) => r##"shape=box, style="rounded,filled", fillcolor="#f8cecc", color="#b85450""##,
        (Kind::NamedConstant | Kind::Computed, true) => {
            r##"shape=ellipse, style=filled, fillcolor="#fbe5e3", color="#b85450""##
        }
    }
}

/// Edges between adjoint values; edges from primal values into the adjoint code.
const ADJOINT_EDGE: &str = r##"style=dashed, color="#b85450", fontcolor="#b85450""##;
const PRIMAL_TO_ADJOINT_EDGE: &str = r#"style=dotted, color=grey55, fontcolor=grey45"#;

/// The longest attribute text a node shows; a literal's numbers can run on.
const LONGEST_ATTRIBUTES: usize = 48;

/// Text for a double-quoted DOT string: quotes and backslashes escaped, lines as `\n`.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a name is one a transformation made up (`t17`) rather than one a value was given.
fn is_temporary(name: &str) -> bool {
    name.strip_prefix('t').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `1 param`, `80 params`, `width^2 + width params`.
fn params_text(count: &Dim) -> String {
    let text = format_count(count);
    if count.as_const() == Some(1) { format!("{text} param") } else { format!("{text} params") }
}

struct Graph<'a> {
    f: &'a Function,
    options: &'a GraphOptions,
    names: Names<'a>,
    kinds: HashMap<Value, Kind>,
    /// The layer (index into `f.layers`) each value belongs to.
    layer_of: HashMap<Value, usize>,
}

impl Graph<'_> {
    fn is_adjoint(&self, value: Value) -> bool {
        self.options.primal_values.is_some_and(|n| value.0 as usize >= n)
    }

    fn label(&self, value: Value) -> String {
        let f = self.f;
        let shape = &f.ty(value).shape;
        let typed = |name: String| if shape.rank() == 0 { name } else { format!("{name}: {shape}") };
        match f.def(value) {
            None => {
                let name = f.name_of(value).to_string();
                match self.names.names.get(&value) {
                    Some(lecture) => typed(format!("{name} = {lecture}")),
                    None => typed(name),
                }
            }
            Some(inst) => match &inst.op {
                Op::Const(c) if is_temporary(f.name_of(value)) => number(*c),
                Op::Const(c) => format!("{} = {}", f.name_of(value), number(*c)),
                op => {
                    let mut text = format!("{} = {}", self.names.of(value), self.names.primal(op, &inst.args));
                    let mut extra = op.attributes();
                    if extra.chars().count() > LONGEST_ATTRIBUTES {
                        extra = extra.chars().take(LONGEST_ATTRIBUTES - 1).collect::<String>() + "…";
                    }
                    if !extra.is_empty() {
                        text.push('\n');
                        text.push_str(&extra);
                    }
                    text
                }
            },
        }
    }

    fn node(&self, out: &mut String, value: Value, indent: &str) {
        let kind = self.kinds[&value];
        let result = if self.f.results.contains(&value) { ", peripheries=2" } else { "" };
        let _ = writeln!(
            out,
            "{indent}n{} [label={}, {}{result}];",
            value.0,
            quoted(&self.label(value)),
            style(kind, self.is_adjoint(value))
        );
    }

    /// The values in the order the function lists them: arguments, then instructions.
    fn values(&self) -> Vec<Value> {
        self.f.params.iter().map(|p| p.value).chain(self.f.body.iter().map(|i| i.result)).collect()
    }

    /// The nodes of the primal graph (or of the whole graph when there is no adjoint),
    /// a model's layers as clusters.
    fn primal_nodes(&self, out: &mut String, indent: &str) {
        let values: Vec<Value> = self.values().into_iter().filter(|&v| !self.is_adjoint(v)).collect();
        for value in values.iter().filter(|v| !self.layer_of.contains_key(v)) {
            self.node(out, *value, indent);
        }
        for (index, layer) in self.f.layers.iter().enumerate() {
            let members: Vec<Value> = values.iter().copied().filter(|v| self.layer_of.get(v) == Some(&index)).collect();
            if members.is_empty() {
                continue;
            }
            let mut label = self.options.layer_labels.get(index).cloned().unwrap_or_default();
            let count = self.parameter_count(layer.values.clone());
            if count != Dim::constant(0) {
                label = format!("{label}\n{}", params_text(&count));
            }
            let _ = writeln!(out, "{indent}subgraph cluster_layer{index} {{");
            let _ = writeln!(
                out,
                "{indent}  label={}; style=\"rounded,filled\"; fillcolor=\"#f5f5f5\"; color=\"#999999\";",
                quoted(&label)
            );
            for value in members {
                self.node(out, value, &format!("{indent}  "));
            }
            let _ = writeln!(out, "{indent}}}");
        }
    }

    /// The number of weights of the parameters among `values`.
    fn parameter_count(&self, values: std::ops::Range<u32>) -> Dim {
        self.f
            .params
            .iter()
            .filter(|p| values.contains(&p.value.0) && self.kinds[&p.value] == Kind::Parameter)
            .filter_map(|p| self.f.ty(p.value).shape.elements())
            .fold(Dim::constant(0), |total, n| total.checked_add(&n).unwrap_or(total))
    }

    /// One edge from `from` to `to`. An edge within the adjoint code is written from its
    /// head to its tail and drawn backwards: the layout then ranks the adjoint values
    /// against the flow of the primal graph, so the seed sits by the output and the
    /// gradients by the inputs, as the reverse trace runs.
    fn edge(&self, out: &mut String, from: Value, to: &str, adjoint_target: bool) {
        let shape = &self.f.ty(from).shape;
        let label = if shape.rank() == 0 { String::new() } else { format!("label={}", quoted(&shape.to_string())) };
        let join = |a: &str, b: &str| match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_string(),
            (_, true) => a.to_string(),
            _ => format!("{a}, {b}"),
        };
        let attributes = match (self.is_adjoint(from), adjoint_target) {
            (true, _) => {
                let _ = writeln!(out, "  {to} -> n{} [{}];", from.0, join(&label, &join("dir=back", ADJOINT_EDGE)));
                return;
            }
            // Primal values read by the adjoint code do not place it: left to itself, the
            // layout would pull every adjoint node next to the primal value it reads.
            (false, true) => join(&label, &join(PRIMAL_TO_ADJOINT_EDGE, "constraint=false")),
            (false, false) => label,
        };
        if attributes.is_empty() {
            let _ = writeln!(out, "  n{} -> {to};", from.0);
        } else {
            let _ = writeln!(out, "  n{} -> {to} [{attributes}];", from.0);
        }
    }
}

/// The computational graph of `f` as a Graphviz `digraph`: a node per argument and per
/// instruction (constants as small plain nodes), an edge per use labelled with the shape
/// of the value (none for scalars), the returned values with a double border and an arrow
/// to a node with the result's name. With `options.primal_values`, the primal graph and the
/// adjoint code are drawn as two clusters, with the adjoint's edges dashed and the primal
/// values it reads dotted.
pub fn graph_dot(f: &Function, options: &GraphOptions) -> String {
    let input_count = options.inputs.min(f.params.len());
    let primal_params =
        f.params.iter().filter(|p| options.primal_values.is_none_or(|n| (p.value.0 as usize) < n)).count();
    let mut kinds = HashMap::new();
    for (i, p) in f.params.iter().enumerate() {
        let is_input = i < input_count || i >= primal_params || f.dropout_masks.iter().any(|(m, _)| *m == i);
        kinds.insert(p.value, if is_input { Kind::Input } else { Kind::Parameter });
    }
    for inst in &f.body {
        let kind = match inst.op {
            Op::Const(_) if is_temporary(f.name_of(inst.result)) => Kind::Constant,
            Op::Const(_) => Kind::NamedConstant,
            _ => Kind::Computed,
        };
        kinds.insert(inst.result, kind);
    }
    // The lecture's numbering of a function's n inputs: v_{i-n}, so x1 = v-1 for two.
    let mut lecture = HashMap::new();
    if options.lecture_names {
        for (i, p) in f.params.iter().take(input_count).enumerate() {
            lecture.insert(p.value, format!("v{}", i as i64 + 1 - input_count as i64));
        }
    }
    // A constant with a name of its own is written by its name where it is used: the
    // adjoint code reads `v8 = y_bar × v0`, as the lecture's `v̄2 v0` with `v̄2 = ȳ`.
    for inst in &f.body {
        if kinds[&inst.result] == Kind::NamedConstant {
            lecture.insert(inst.result, f.name_of(inst.result).to_string());
        }
    }
    let mut layer_of = HashMap::new();
    for (index, layer) in f.layers.iter().enumerate() {
        for id in layer.values.clone() {
            layer_of.insert(Value(id), index);
        }
    }
    let graph = Graph { f, options, names: Names { f, names: lecture }, kinds, layer_of };

    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quoted(&f.name));
    let mut settings = vec![format!("rankdir={}", if options.left_to_right { "LR" } else { "TB" })];
    if let Some(title) = &options.title {
        settings.push(format!("label={}", quoted(title)));
        settings.push("labelloc=t".into());
    }
    settings.extend(["fontname=\"Helvetica\"".into(), "fontsize=12".into(), "nodesep=0.3".into()]);
    let _ = writeln!(out, "  graph [{}];", settings.join(", "));
    let _ = writeln!(out, "  node [fontname=\"Helvetica\", fontsize=11];");
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=9];");

    if options.primal_values.is_some() {
        let _ = writeln!(out, "  subgraph cluster_primal {{");
        let _ = writeln!(out, "    label=\"primal\"; style=rounded; color=\"#6c8ebf\";");
        graph.primal_nodes(&mut out, "    ");
        let _ = writeln!(out, "  }}");
        let _ = writeln!(out, "  subgraph cluster_adjoint {{");
        let _ = writeln!(out, "    label=\"adjoint\"; style=rounded; color=\"#b85450\"; fontcolor=\"#b85450\";");
        for value in graph.values().into_iter().filter(|&v| graph.is_adjoint(v)) {
            graph.node(&mut out, value, "    ");
        }
        let _ = writeln!(out, "  }}");
    } else {
        graph.primal_nodes(&mut out, "  ");
    }

    // A node for each result, named as the function names it: `y`, `x1_bar`, `loss`.
    for i in 0..f.results.len() {
        let name = f.result_names.get(i).map_or("y", String::as_str);
        let _ = writeln!(out, "  out{i} [label={}, shape=plaintext];", quoted(name));
    }

    for inst in &f.body {
        for &arg in &inst.args {
            graph.edge(&mut out, arg, &format!("n{}", inst.result.0), graph.is_adjoint(inst.result));
        }
    }
    for (i, &result) in f.results.iter().enumerate() {
        graph.edge(&mut out, result, &format!("out{i}"), graph.is_adjoint(result));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver;
    use crate::ir::reverse;
    use crate::shapes::Shape;

    const SOURCE: &str = "model Net(hidden) {\n    input [B, 4]\n    linear(hidden)\n    relu\n    linear(2)\n}\n\n\
                          fn f(x1, x2) = ln(x1) + x1 * x2 - sin(x2)\n";

    fn lowered_model() -> Function {
        let analysis = crate::analyze(SOURCE);
        assert!(analysis.diagnostics.is_empty(), "{:?}", analysis.diagnostics);
        driver::inference(&analysis.model("Net", &HashMap::new()).unwrap(), None).unwrap()
    }

    fn lowered_fn() -> Function {
        let analysis = crate::analyze(SOURCE);
        driver::function(&analysis, "f", &[Shape(Vec::new()), Shape(Vec::new())]).unwrap()
    }

    #[test]
    fn a_model_records_the_values_of_each_statement() {
        let f = lowered_model();
        let texts: Vec<&str> = f.layers.iter().map(|l| &SOURCE[l.span.start..l.span.end]).collect();
        assert_eq!(texts, ["linear(hidden)", "relu", "linear(2)"]);
        // Each layer's parameters fall in its statement's range, the input in none.
        let owner = |name: &str| {
            let value = f.params.iter().find(|p| p.name == name).unwrap().value;
            f.layers.iter().position(|l| l.values.contains(&value.0))
        };
        assert_eq!(owner("x"), None);
        assert_eq!([owner("0.weight"), owner("0.bias")], [Some(0), Some(0)]);
        assert_eq!([owner("2.weight"), owner("2.bias")], [Some(2), Some(2)]);
        let relu = f.body.iter().find(|i| i.op == Op::Relu).unwrap().result;
        assert!(f.layers[1].values.contains(&relu.0));
        // Reverse mode builds on a clone, so the primal values keep their ids and groups.
        let all: Vec<usize> = (1..f.params.len()).collect();
        let (grad, _) = reverse(&f, &all);
        assert_eq!(grad.layers, f.layers);
        assert_eq!(grad.values[..f.values.len()], f.values[..]);
    }

    #[test]
    fn layers_are_clusters_with_their_parameter_counts() {
        let f = lowered_model();
        let options = GraphOptions {
            inputs: 1,
            layer_labels: vec!["linear(hidden)".into(), "relu".into(), "linear(2)".into()],
            ..GraphOptions::default()
        };
        let dot = graph_dot(&f, &options);
        // 4·hidden weights and hidden biases, summed by the dimension arithmetic.
        assert!(dot.contains("label=\"linear(hidden)\\n5·hidden params\""), "{dot}");
        assert!(dot.contains("label=\"linear(2)\\n2·hidden + 2 params\""), "{dot}");
        // A layer without parameters has no count.
        assert!(dot.contains("label=\"relu\";"), "{dot}");
        assert_eq!(dot.matches("subgraph cluster_layer").count(), 3);
        assert!(dot.contains("rankdir=TB"));
    }

    #[test]
    fn the_adjoint_flows_back_beside_the_primal_graph() {
        let f = lowered_fn();
        let primal = f.values.len();
        let (mut grad, _) = reverse(&f, &[0, 1]);
        grad.name_temporaries();
        let options = GraphOptions {
            inputs: 2,
            lecture_names: true,
            primal_values: Some(primal),
            left_to_right: true,
            ..GraphOptions::default()
        };
        let dot = graph_dot(&grad, &options);
        assert!(dot.contains("label=\"x1 = v-1\""), "{dot}");
        assert!(dot.contains("label=\"v2 = v-1 × v0\""), "{dot}");
        assert!(dot.contains("subgraph cluster_primal") && dot.contains("subgraph cluster_adjoint"));
        // The seed is written by its name where it is used: v3_bar = -y_bar.
        assert!(dot.contains("label=\"v3_bar = -y_bar\""), "{dot}");
        // Adjoint edges go backwards and dashed; primal values read by them dotted.
        assert!(dot.lines().any(|l| l.contains("dir=back") && l.contains("style=dashed")), "{dot}");
        assert!(dot.lines().any(|l| l.contains("style=dotted") && l.contains("constraint=false")), "{dot}");
        // The three results are marked: y, x1_bar, x2_bar.
        assert_eq!(dot.matches("peripheries=2").count(), 3);
        for name in ["y", "x1_bar", "x2_bar"] {
            assert!(dot.contains(&format!("[label=\"{name}\", shape=plaintext]")), "{name}: {dot}");
        }
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(quoted("a \"b\" \\ c\nd"), r#""a \"b\" \\ c\nd""#);
    }
}
