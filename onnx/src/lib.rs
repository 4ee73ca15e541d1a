//! Writing nnc models as ONNX files: the ONNX graph the compiler builds (`to_onnx`), with
//! the model's weights, encoded as an ONNX `ModelProto`.

use nnc_compiler::ir::{
    ONNX_FLOAT, ONNX_INT64, ONNX_IR_VERSION, ONNX_OPSET, OnnxAttr, OnnxData, OnnxDim, OnnxGraph, OnnxValue, dims_text,
};
use nnc_grammar::Span;
use prost::Message;

/// The types of the ONNX protobuf schema, generated from `proto/onnx.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use proto::attribute_proto::AttributeType;
use proto::tensor_shape_proto::{Dimension, dimension};
use proto::type_proto;

/// One weight: its name, shape and values.
pub type Weight = (String, Vec<usize>, Vec<f32>);

/// What the model says of itself besides its graph.
pub struct ModelInfo<'a> {
    /// The model's documentation (its `///` comment).
    pub doc: String,
    /// Key-value pairs for the model's metadata, such as the source file.
    pub metadata: Vec<(String, String)>,
    /// Where a node's source is, such as `digits_cnn.nn:5`, for the nodes' documentation.
    pub locate: &'a dyn Fn(Span) -> String,
}

/// The ONNX model of `graph` with `weights` (one per graph weight, matched by name and
/// checked by shape).
pub fn model_proto(graph: &OnnxGraph, weights: &[Weight], info: &ModelInfo<'_>) -> Result<proto::ModelProto, String> {
    let mut initializer = Vec::with_capacity(graph.weights.len() + graph.constants.len());
    for wanted in &graph.weights {
        let Some((name, shape, values)) = weights.iter().find(|(n, _, _)| *n == wanted.name) else {
            let names: Vec<&str> = weights.iter().map(|(n, _, _)| n.as_str()).collect();
            return Err(format!("no weights for `{}` (there are {})", wanted.name, names.join(", ")));
        };
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let fixed: Vec<OnnxDim> = dims.iter().map(|&d| OnnxDim::Fixed(d)).collect();
        if fixed != wanted.dims {
            return Err(format!("`{name}` is {shape:?}, but the model needs {}", dims_text(&wanted.dims)));
        }
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        initializer.push(proto::TensorProto {
            name: Some(name.clone()),
            dims,
            data_type: Some(ONNX_FLOAT as i32),
            raw_data: Some(raw),
            ..Default::default()
        });
    }
    for constant in &graph.constants {
        let (data_type, raw) = match &constant.data {
            OnnxData::Float(values) => (ONNX_FLOAT, values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            OnnxData::Int64(values) => (ONNX_INT64, values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        };
        initializer.push(proto::TensorProto {
            name: Some(constant.name.clone()),
            dims: constant.dims.clone(),
            data_type: Some(data_type as i32),
            raw_data: Some(raw),
            ..Default::default()
        });
    }
    let node = graph
        .nodes
        .iter()
        .map(|n| proto::NodeProto {
            input: n.inputs.clone(),
            output: n.outputs.clone(),
            name: Some(n.name.clone()),
            op_type: Some(n.op_type.to_string()),
            attribute: n.attributes.iter().map(|(name, value)| attribute(name, value)).collect(),
            doc_string: Some((info.locate)(n.span)),
            ..Default::default()
        })
        .collect();
    let graph_proto = proto::GraphProto {
        node,
        name: Some(graph.name.clone()),
        initializer,
        doc_string: (!info.doc.is_empty()).then(|| info.doc.clone()),
        input: graph.inputs.iter().map(value_info).collect(),
        output: graph.outputs.iter().map(value_info).collect(),
        ..Default::default()
    };
    Ok(proto::ModelProto {
        ir_version: Some(ONNX_IR_VERSION),
        opset_import: vec![proto::OperatorSetIdProto { domain: Some(String::new()), version: Some(ONNX_OPSET) }],
        producer_name: Some("nnc".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: (!info.doc.is_empty()).then(|| info.doc.clone()),
        graph: Some(graph_proto),
        metadata_props: info
            .metadata
            .iter()
            .map(|(k, v)| proto::StringStringEntryProto { key: Some(k.clone()), value: Some(v.clone()) })
            .collect(),
        ..Default::default()
    })
}

/// The bytes of an ONNX file.
pub fn encode(model: &proto::ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Reads an ONNX file's bytes back, for checking what was written.
pub fn decode(bytes: &[u8]) -> Result<proto::ModelProto, String> {
    proto::ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model: {e}"))
}

fn attribute(name: &str, value: &OnnxAttr) -> proto::AttributeProto {
    let mut proto = proto::AttributeProto { name: Some(name.to_string()), ..Default::default() };
    match value {
        OnnxAttr::Int(i) => {
            proto.r#type = Some(AttributeType::Int as i32);
            proto.i = Some(*i);
        }
        OnnxAttr::Ints(ints) => {
            proto.r#type = Some(AttributeType::Ints as i32);
            proto.ints = ints.clone();
        }
        OnnxAttr::Float(f) => {
            proto.r#type = Some(AttributeType::Float as i32);
            proto.f = Some(*f);
        }
        OnnxAttr::String(s) => {
            proto.r#type = Some(AttributeType::String as i32);
            proto.s = Some(s.as_bytes().to_vec());
        }
    }
    proto
}

/// An f32 tensor of the graph's interface, with a named dimension for the batch.
fn value_info(value: &OnnxValue) -> proto::ValueInfoProto {
    let dim = value
        .dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                OnnxDim::Fixed(n) => dimension::Value::DimValue(*n),
                OnnxDim::Symbol(s) => dimension::Value::DimParam(s.clone()),
            }),
            denotation: None,
        })
        .collect();
    proto::ValueInfoProto {
        name: Some(value.name.clone()),
        r#type: Some(proto::TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(ONNX_FLOAT as i32),
                shape: Some(proto::TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}
