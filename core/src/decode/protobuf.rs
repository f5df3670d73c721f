//! Protobuf payloads (placeholder until the decoder lands).

use arrow_schema::DataType;

use super::{Decoded, FormatDecoder, ResolveContext};
use crate::error::Result;

pub(crate) struct ProtobufDecoder {
    data_type: DataType,
}

impl ProtobufDecoder {
    pub fn resolve(context: &ResolveContext<'_>) -> Result<Self> {
        Err(super::invalid(
            &context.side.parameter("format"),
            "'protobuf' is not supported yet".into(),
        ))
    }
}

impl FormatDecoder for ProtobufDecoder {
    fn data_type(&self) -> &DataType {
        &self.data_type
    }

    fn decode(&mut self, payloads: &[Option<&[u8]>]) -> Result<Decoded> {
        Ok(Decoded::all_null(
            &self.data_type,
            Vec::new(),
            payloads.len(),
        ))
    }

    fn fork(&self) -> Box<dyn FormatDecoder> {
        Box::new(Self {
            data_type: self.data_type.clone(),
        })
    }
}
