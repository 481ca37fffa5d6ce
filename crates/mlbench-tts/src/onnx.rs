//! Reading the weights of a Piper `.onnx` voice: its initializers, named as the VITS
//! parameters they came from, and the hyper-parameters of its convolutions.
//!
//! The protobuf messages below are the subset of
//! [onnx.proto](https://github.com/onnx/onnx/blob/v1.17.0/onnx/onnx.proto) that this needs,
//! with the field numbers of that file; every other field is skipped by the decoder.
//!
//! Names. PyTorch's exporter keeps parameter names (`dec.ups.0.weight`,
//! `enc_p.encoder.attn_layers.0.conv_q.weight`) except for tensors that were computed at export
//! time: weight-norm folding leaves `onnx::Conv_8168`-style names, an embedding can come out
//! named after the graph input that indexes it (`sid`), and constant folding leaves
//! `/dp/flows.0/Exp_output_0`. Such tensors are named through the node that consumes them: a
//! node `/flow/flows.6/enc/in_layers.0/Conv` belongs to the module
//! `flow.flows.6.enc.in_layers.0`, and a Conv's input 1 is that module's `weight`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use prost::Message;

use crate::error::{Result, TtsError};

/// `ModelProto`: only the graph.
#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    /// The computation graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// `GraphProto`: nodes and initializers.
#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    /// The nodes, in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// The constant tensors (weights).
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
}

/// `NodeProto`: one operator.
#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    /// Input value names ("" for an omitted optional input).
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Output value names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name (the exporter's module path, e.g. `/dec/ups.0/ConvTranspose`).
    #[prost(string, tag = "3")]
    pub name: String,
    /// Operator type (`Conv`, `Gather`, …).
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// Attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `AttributeProto`: the integer forms only.
#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    /// Attribute name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// A float value.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// An integer value.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// Integer list values.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
}

/// `TensorProto`: shape, type and data.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// Dimensions.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// Element type (1 float, 10 float16, 11 double, 16 bfloat16, 7 int64, …).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Float data, when not in `raw_data`.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// Name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Little-endian raw data.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// Double data, when not in `raw_data`.
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    /// Where the data lives (1 = external file, unsupported).
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// Hyper-parameters of one `Conv` / `ConvTranspose` node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvAttrs {
    /// Padding (the begin side; VITS pads symmetrically).
    pub padding: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Groups.
    pub groups: usize,
}

/// The float initializers of an ONNX model under their parameter names, and the attributes of
/// each convolution, keyed by the module that owns it (`dec.resblocks.0.convs.1`).
#[derive(Debug, Default)]
pub struct OnnxWeights {
    /// Parameters, f32, on the CPU.
    pub tensors: HashMap<String, Tensor>,
    /// Convolution hyper-parameters per module.
    pub convs: HashMap<String, ConvAttrs>,
}

/// Reads an `.onnx` file's weights (see the module docs for the naming rules).
pub fn read_weights(path: &Path) -> Result<OnnxWeights> {
    let bytes = std::fs::read(path).map_err(|source| TtsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let not_onnx = |detail: String| TtsError::NotOnnx {
        path: path.to_path_buf(),
        detail,
    };
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| not_onnx(e.to_string()))?;
    drop(bytes);
    let graph = model
        .graph
        .ok_or_else(|| not_onnx("the file has no graph".into()))?;
    if graph.initializer.is_empty() {
        return Err(not_onnx("the graph has no initializers".into()));
    }
    weights_from_graph(graph)
}

/// Names and converts the initializers of a decoded graph.
pub fn weights_from_graph(graph: GraphProto) -> Result<OnnxWeights> {
    // Who consumes each value: (node index, input index).
    let mut consumers: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    for (n, node) in graph.node.iter().enumerate() {
        for (i, input) in node.input.iter().enumerate() {
            consumers.entry(input.as_str()).or_default().push((n, i));
        }
    }
    let mut out = OnnxWeights::default();
    let mut names: HashMap<String, String> = HashMap::new();
    for t in &graph.initializer {
        if !matches!(t.data_type, 1 | 10 | 11 | 16) {
            continue;
        }
        let name = if is_parameter_name(&t.name) {
            Some(t.name.clone())
        } else {
            consumers
                .get(t.name.as_str())
                .into_iter()
                .flatten()
                .find_map(|&(n, i)| renamed_parameter(&graph.node[n], i, &t.name))
        };
        if let Some(name) = name {
            names.insert(t.name.clone(), name);
        }
    }
    for node in &graph.node {
        if node.op_type != "Conv" && node.op_type != "ConvTranspose" {
            continue;
        }
        let Some(weight) = node.input.get(1).and_then(|w| names.get(w)) else {
            continue;
        };
        let module = weight.strip_suffix(".weight").unwrap_or(weight).to_string();
        let int = |key: &str, default: i64| {
            node.attribute
                .iter()
                .find(|a| a.name == key)
                .map(|a| a.ints.first().copied().unwrap_or(a.i))
                .unwrap_or(default)
                .max(0) as usize
        };
        out.convs.insert(
            module,
            ConvAttrs {
                padding: int("pads", 0),
                stride: int("strides", 1),
                dilation: int("dilations", 1),
                groups: int("group", 1),
            },
        );
    }
    for t in graph.initializer {
        let Some(name) = names.remove(&t.name) else {
            continue;
        };
        let (name, tensor) = to_tensor(&name, t)?;
        out.tensors.insert(name, tensor);
    }
    Ok(out)
}

/// `enc_p.encoder.attn_layers.0.conv_q.weight`, not `onnx::Conv_8168`, `/dp/flows.0/Exp_output_0`
/// or a graph input name such as `sid`.
fn is_parameter_name(name: &str) -> bool {
    name.contains('.')
        && !name.starts_with('/')
        && !name.contains("::")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// The parameter name of a renamed initializer, from the node that consumes it.
fn renamed_parameter(node: &NodeProto, input: usize, init_name: &str) -> Option<String> {
    // `/flow/flows.6/enc/in_layers.0/Conv` → `flow.flows.6.enc.in_layers.0`.
    let path = node.name.strip_prefix('/')?;
    let (module, _op) = path.rsplit_once('/')?;
    let module = module.replace('/', ".");
    let param = match (node.op_type.as_str(), input) {
        ("Conv" | "ConvTranspose", 1) => "weight",
        ("Conv" | "ConvTranspose", 2) => "bias",
        ("Gather", 0) => "weight",
        // ElementwiseAffine run in reverse multiplies by exp(-logs), folded into a constant.
        ("Mul", _) if init_name.ends_with("/Exp_output_0") => "exp_neg_logs",
        _ => return None,
    };
    Some(format!("{module}.{param}"))
}

fn to_tensor(name: &str, t: TensorProto) -> Result<(String, Tensor)> {
    let bad = |what: &str| TtsError::Weights(format!("initializer {name}: {what}"));
    if t.data_location == 1 {
        return Err(bad("external data is not supported"));
    }
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let n: usize = dims.iter().product();
    let raw = &t.raw_data;
    let values: Vec<f32> = match t.data_type {
        1 if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        1 => t.float_data,
        11 if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        11 => t.double_data.iter().map(|&v| v as f32).collect(),
        // f16 / bf16 in raw_data, or as the low 16 bits of int32_data (not read here).
        10 | 16 if !raw.is_empty() => raw
            .chunks_exact(2)
            .map(|b| {
                let bits = u16::from_le_bytes([b[0], b[1]]);
                if t.data_type == 10 {
                    f16_to_f32(bits)
                } else {
                    f32::from_bits((bits as u32) << 16)
                }
            })
            .collect(),
        _ => return Err(bad("unsupported data layout")),
    };
    if values.len() != n {
        return Err(bad(&format!("{} values for shape {dims:?}", values.len())));
    }
    let tensor = Tensor::from_vec(values, dims, &Device::Cpu)?;
    // exp(-logs) → logs, the parameter the model code expects.
    if let Some(module) = name.strip_suffix(".exp_neg_logs") {
        let logs = tensor.log()?.neg()?;
        return Ok((format!("{module}.logs"), logs));
    }
    Ok((name.to_string(), tensor.to_dtype(DType::F32)?))
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names() {
        assert!(is_parameter_name("dec.ups.0.weight"));
        assert!(!is_parameter_name("onnx::Conv_8168"));
        assert!(!is_parameter_name("/dp/flows.0/Exp_output_0"));
        assert!(!is_parameter_name("sid"));
    }

    #[test]
    fn renamed_through_consumer() {
        let node = NodeProto {
            name: "/flow/flows.6/enc/in_layers.0/Conv".into(),
            op_type: "Conv".into(),
            ..Default::default()
        };
        assert_eq!(
            renamed_parameter(&node, 1, "onnx::Conv_1").as_deref(),
            Some("flow.flows.6.enc.in_layers.0.weight")
        );
        let gather = NodeProto {
            name: "/enc_p/emb/Gather".into(),
            op_type: "Gather".into(),
            ..Default::default()
        };
        assert_eq!(
            renamed_parameter(&gather, 0, "sid").as_deref(),
            Some("enc_p.emb.weight")
        );
    }

    #[test]
    fn decodes_a_small_graph() {
        let graph = GraphProto {
            node: vec![NodeProto {
                input: vec!["x".into(), "onnx::Conv_7".into(), "m.conv.bias".into()],
                output: vec!["y".into()],
                name: "/m/conv/Conv".into(),
                op_type: "Conv".into(),
                attribute: vec![
                    AttributeProto {
                        name: "dilations".into(),
                        ints: vec![3],
                        ..Default::default()
                    },
                    AttributeProto {
                        name: "pads".into(),
                        ints: vec![3, 3],
                        ..Default::default()
                    },
                ],
            }],
            initializer: vec![
                TensorProto {
                    dims: vec![2, 1, 3],
                    data_type: 1,
                    name: "onnx::Conv_7".into(),
                    raw_data: (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect(),
                    ..Default::default()
                },
                TensorProto {
                    dims: vec![2],
                    data_type: 1,
                    name: "m.conv.bias".into(),
                    float_data: vec![0.5, -0.5],
                    ..Default::default()
                },
            ],
        };
        let bytes = ModelProto { graph: Some(graph) }.encode_to_vec();
        let graph = ModelProto::decode(bytes.as_slice()).unwrap().graph.unwrap();
        let w = weights_from_graph(graph).unwrap();
        let weight = w.tensors["m.conv.weight"].flatten_all().unwrap();
        assert_eq!(weight.to_vec1::<f32>().unwrap(), [0., 1., 2., 3., 4., 5.]);
        assert_eq!(
            w.tensors["m.conv.bias"].to_vec1::<f32>().unwrap(),
            [0.5, -0.5]
        );
        let c = w.convs["m.conv"];
        assert_eq!((c.dilation, c.padding, c.stride, c.groups), (3, 3, 1, 1));
    }

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }
}
