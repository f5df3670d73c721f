//! JSON payloads (placeholder until the decoder lands).

use arrow_schema::DataType;

use super::{Decoded, FormatDecoder, ResolveContext};
use crate::error::Result;

pub(crate) struct JsonDecoder {
    data_type: DataType,
}

impl JsonDecoder {
    pub fn resolve(
        context: &ResolveContext<'_>,
        _sample: &mut dyn FnMut(super::Side, usize) -> Result<Vec<Option<Vec<u8>>>>,
    ) -> Result<Self> {
        Err(super::invalid(
            &context.side.parameter("format"),
            "'json' is not supported yet".into(),
        ))
    }
}

impl FormatDecoder for JsonDecoder {
    fn data_type(&self) -> &DataType {
        &self.data_type
    }

    fn decode(&mut self, payloads: &[Option<&[u8]>]) -> Result<Decoded> {
        Ok(Decoded::all_null(&self.data_type, Vec::new(), payloads.len()))
    }

    fn fork(&self) -> Box<dyn FormatDecoder> {
        Box::new(Self {
            data_type: self.data_type.clone(),
        })
    }
}
