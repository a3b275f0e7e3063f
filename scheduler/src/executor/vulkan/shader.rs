//! The tenants' compute kernel: WGSL compiled to SPIR-V in-process with naga. Its running time
//! is set by a loop count read from a buffer, so each job can be made as long as its workload
//! asks.

use naga::back::spv;
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// Each invocation runs `iterations` steps of an LCG; the result is stored so the loop cannot
/// be optimised away.
pub const BUSY_LOOP_WGSL: &str = r#"
struct Params {
    iterations: u32,
    seed: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> params: Params;
@group(0) @binding(1) var<storage, read_write> data: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    var x = id.x ^ params.seed;
    for (var i = 0u; i < params.iterations; i = i + 1u) {
        x = x * 1664525u + 1013904223u;
    }
    data[id.x] = x;
}
"#;

pub const ENTRY_POINT: &str = "main";
pub const WORKGROUP_SIZE: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum ShaderError {
    #[error("WGSL parse error: {0}")]
    Parse(String),
    #[error("WGSL validation error: {0}")]
    Validate(String),
    #[error("SPIR-V generation: {0}")]
    Spirv(#[from] spv::Error),
}

/// Compiles a WGSL compute shader with entry point `main` to SPIR-V words.
pub fn compile(source: &str) -> Result<Vec<u32>, ShaderError> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| ShaderError::Parse(e.emit_to_string(source)))?;
    let info = Validator::new(ValidationFlags::all(), Capabilities::empty())
        .validate(&module)
        .map_err(|e| ShaderError::Validate(format!("{:?}", e.into_inner())))?;
    let pipeline = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: ENTRY_POINT.to_owned(),
    };
    Ok(spv::write_vec(
        &module,
        &info,
        &spv::Options::default(),
        Some(&pipeline),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_loop_compiles_to_spirv() {
        let words = compile(BUSY_LOOP_WGSL).unwrap();
        assert_eq!(words[0], 0x0723_0203, "SPIR-V magic");
        assert!(words.len() > 50);
    }

    #[test]
    fn broken_wgsl_is_an_error_not_a_panic() {
        let err = compile("fn main( {").unwrap_err();
        assert!(matches!(err, ShaderError::Parse(_)), "{err}");
    }
}
