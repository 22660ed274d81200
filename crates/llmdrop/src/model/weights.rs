//! Checked access to a [`WeightSource`]: every tensor's shape is checked against the config.

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::io::WeightSource;

/// A weight source plus the dtype and device tensors are loaded to.
pub struct Weights<'a> {
    pub src: &'a dyn WeightSource,
    pub dtype: DType,
    pub device: &'a Device,
}

impl Weights<'_> {
    /// Loads `name`, which must have shape `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let found = self.src.shape(name).ok_or_else(|| self.missing(name))?;
        if found != shape {
            return Err(Error::TensorShape {
                path: self.src.path().into(),
                name: name.into(),
                expected: shape.to_vec(),
                found,
            });
        }
        self.src.load(name, self.dtype, self.device)
    }

    /// Loads `name` if the source has it.
    pub fn get_opt(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        if self.src.shape(name).is_some() {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.src.shape(name).is_some()
    }

    fn missing(&self, name: &str) -> Error {
        // "did you mean": the stored name sharing the longest suffix with the wanted one.
        let names = self.src.tensors();
        let best = names
            .iter()
            .map(|t| {
                let common = t
                    .name
                    .chars()
                    .rev()
                    .zip(name.chars().rev())
                    .take_while(|(a, b)| a == b)
                    .count();
                (common, &t.name)
            })
            .max_by_key(|(c, _)| *c)
            .filter(|(c, _)| *c >= 6);
        Error::MissingTensor {
            path: self.src.path().into(),
            name: name.into(),
            hint: best
                .map(|(_, n)| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default(),
        }
    }
}
