//! The IR verifier: every value is defined once before it is used, every instruction's
//! type is what its op's shape rule gives, and the results exist. Tests run it after every
//! pass.

use super::Function;
use std::collections::HashSet;

/// What the verifier found wrong, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError(pub String);

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn verify(f: &Function) -> Result<(), VerifyError> {
    let mut defined = HashSet::new();
    let mut names = HashSet::new();
    for param in &f.params {
        if !defined.insert(param.value) {
            return Err(VerifyError(format!("argument `{}` is defined twice", param.name)));
        }
    }
    for inst in &f.body {
        for arg in &inst.args {
            if !defined.contains(arg) {
                return Err(VerifyError(format!(
                    "`{}` uses `{}` before it is defined",
                    f.name_of(inst.result),
                    f.name_of(*arg)
                )));
            }
        }
        if !defined.insert(inst.result) {
            return Err(VerifyError(format!("`{}` is defined twice", f.name_of(inst.result))));
        }
        let shapes: Vec<_> = inst.args.iter().map(|&a| &f.ty(a).shape).collect();
        match inst.op.shape(&shapes) {
            Ok(shape) if shape == f.ty(inst.result).shape => {}
            Ok(shape) => {
                return Err(VerifyError(format!(
                    "`{}` = {} has type {} but its op gives {shape}",
                    f.name_of(inst.result),
                    inst.op.name(),
                    f.ty(inst.result).shape
                )));
            }
            Err(error) => {
                return Err(VerifyError(format!("`{}` = {}: {error}", f.name_of(inst.result), inst.op.name())));
            }
        }
    }
    for value in defined.iter() {
        let name = f.name_of(*value);
        let is_const = f.def(*value).is_some_and(|i| matches!(i.op, super::Op::Const(_)));
        if !is_const && !names.insert(name.to_string()) {
            return Err(VerifyError(format!("two values are named `{name}`")));
        }
    }
    for result in &f.results {
        if !defined.contains(result) {
            return Err(VerifyError(format!("the result `{}` is not defined", f.name_of(*result))));
        }
    }
    Ok(())
}
