//! Machine code for a kernel program, generated with Cranelift: one function per kernel,
//! `k(table, first, end, scratch)` (`KernelFn`), that computes units `first..end` of the
//! kernel's independent units (batch items, planes, blocks of rows), so that the executor
//! can run parts of one kernel on several threads at once. The table holds the addresses of
//! the program's buffers in order, then that of a `BoundsReport`; `scratch` is the call's
//! own space for packed matrices.
//!
//! Elementwise loops run four lanes at a time (f32x4) where their accesses allow; matrix
//! products below `Options::library_products` multiply-adds pack the right-hand matrix into
//! panels of eight columns and compute 4×8 tiles in eight vector accumulators (the most
//! that stay in registers), and larger ones call the AVX-512 kernels of `microkernel` or
//! the `gemm` crate; convolutions are im2col feeding those products; pooling runs direct
//! loops. Transcendental functions call Rust's implementations.

mod calls;
mod conv;
mod elementwise;
mod generator;
mod matmul;
mod ops;
mod pool;
mod softmax;

use crate::kernel::{Kernel, Program};
use calls::{MATH, MathFunction, nnc_dot_products, nnc_gemm, nnc_out_of_bounds};
use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, isa};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};
use generator::Gen;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Columns of a packed panel of the right-hand matrix: two f32x4 vectors.
pub const PANEL: usize = 8;

/// How to generate code.
#[derive(Clone, Debug)]
pub struct Options {
    /// Write the generated CLIF, annotated with the kernel each part came from, here.
    pub dump_clif: Option<PathBuf>,
    /// Products of at least this many multiply-adds call the `gemm` crate's AVX-512 or
    /// AVX2 kernels instead of generated f32x4 code; `usize::MAX` never does.
    pub library_products: usize,
    /// Check every load and store against its buffer's length (the differential tests do):
    /// an access outside is reported (`BoundsReport`) and reads or writes element 0 instead.
    pub bounds_checks: bool,
    /// Kernels of at least this many floating-point operations are split over the
    /// executor's threads; tests set 0 to split every kernel that can be.
    pub parallel_flops: u64,
}

/// Kernels of fewer floating-point operations run on one thread: handing part of a kernel
/// to another core and waiting for it costs a few microseconds, the time of about this
/// much work.
pub const PARALLEL_FLOPS: u64 = 200_000;

/// Measured on this machine class with `nnc bench` and `NNC_LIBRARY_PRODUCTS`: calling the
/// library for every product made the digits MLP 60% faster than generated code alone
/// (89,000 against 55,000 steps per second), but the iris MLP's products of a few hundred
/// multiply-adds run 10% faster in generated code, which needs no call and no packing.
pub const LIBRARY_PRODUCTS: usize = 4096;

impl Default for Options {
    fn default() -> Options {
        Options {
            dump_clif: None,
            library_products: LIBRARY_PRODUCTS,
            bounds_checks: false,
            parallel_flops: PARALLEL_FLOPS,
        }
    }
}

/// A kernel's machine code: `fn(table, first unit, end unit, scratch)`. The table holds
/// the program's buffer addresses in order, then the address of a `BoundsReport`; units
/// `first..end` of the kernel's `units` are computed (the whole kernel for `0..units`), and
/// `scratch` is this call's own space for packed matrices.
pub type KernelFn = unsafe extern "C" fn(*const *mut f32, i64, i64, *mut f32);

/// One compiled kernel.
#[derive(Clone, Copy, Debug)]
pub struct CompiledKernel {
    pub entry: KernelFn,
    /// The independent parts the kernel splits into (batch items, planes, rows, blocks of
    /// rows): calls on disjoint ranges of them may run at once. 1 when it does not split.
    pub units: usize,
    /// Floating-point operations of the whole kernel, to decide whether splitting pays.
    pub flops: u64,
}

/// A compiled program: its kernels, in order, and the module that owns their code.
pub struct Compiled {
    /// Kept alive: it owns the executable memory the kernels point into.
    _module: JITModule,
    pub kernels: Vec<CompiledKernel>,
    /// Floats of scratch space each concurrent call of a kernel needs.
    pub scratch: usize,
    pub compile_time: Duration,
}

/// Where compiled code with bounds checks reports the first access outside a buffer.
/// Kernels split over threads may report at once, hence atomics.
#[derive(Debug, Default)]
#[repr(C)]
pub struct BoundsReport {
    /// Accesses outside their buffer so far.
    pub count: AtomicU64,
    pub kernel: AtomicU64,
    pub buffer: AtomicU64,
    pub index: AtomicU64,
}

impl BoundsReport {
    /// The first access outside its buffer as `(kernel, buffer, element index)`, and how
    /// many there were.
    pub fn first(&self) -> Option<((u64, u64, u64), u64)> {
        let count = self.count.load(Ordering::Acquire);
        (count > 0).then(|| {
            let at = [&self.kernel, &self.buffer, &self.index].map(|x| x.load(Ordering::Acquire));
            ((at[0], at[1], at[2]), count)
        })
    }
}

/// How many rows (or columns) of C one call of the `gemm` crate computes in a product split
/// over them (the last block may have fewer); a part of a split kernel takes whole blocks.
/// The blocks depend on the product alone, never on the threads, so that any number of
/// threads makes the same calls: at least `MIN_LIBRARY_BLOCK` rows each, since every call
/// packs its other operand again, and at most `LIBRARY_BLOCKS` of them, as even as
/// possible, so that 2 or 3 threads take equal shares.
pub fn library_block(extent: usize) -> usize {
    let blocks = (extent / MIN_LIBRARY_BLOCK).clamp(1, LIBRARY_BLOCKS);
    extent.div_ceil(blocks).max(1)
}

const MIN_LIBRARY_BLOCK: usize = 32;
const LIBRARY_BLOCKS: usize = 6;

/// The ISA of this machine with the settings the kernels are tuned for.
fn host_isa() -> Result<std::sync::Arc<dyn isa::TargetIsa>, String> {
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, key: &str, value: &str| {
        flags.set(key, value).map_err(|e| format!("cranelift setting {key}={value}: {e}"))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    // The native builder turns on the host's SSE4.1, AVX, AVX2 and FMA.
    let builder = cranelift_native::builder().map_err(|e| format!("this machine is not supported: {e}"))?;
    builder.finish(settings::Flags::new(flags)).map_err(|e| e.to_string())
}

/// Compiles `program` to machine code: one function per kernel.
pub fn compile(program: &Program, options: &Options) -> Result<Compiled, String> {
    let started = Instant::now();
    let isa = host_isa()?;
    let mut jit = JITBuilder::with_isa(isa, default_libcall_names());
    for function in &MATH {
        jit.symbol(function.name, (function.address)());
    }
    jit.symbol("nnc_gemm", nnc_gemm as *const u8);
    jit.symbol("nnc_dot_products", nnc_dot_products as *const u8);
    jit.symbol("nnc_out_of_bounds", nnc_out_of_bounds as *const u8);
    let mut module = JITModule::new(jit);
    let pointer = module.target_config().pointer_type();
    let mut math_ids = HashMap::new();
    for &MathFunction { name, arity, .. } in &MATH {
        let mut sig = module.make_signature();
        for _ in 0..arity {
            sig.params.push(AbiParam::new(types::F32));
        }
        sig.returns.push(AbiParam::new(types::F32));
        let id = module.declare_function(name, Linkage::Import, &sig).map_err(|e| e.to_string())?;
        math_ids.insert(name, id);
    }
    // fn(m, n, k, batch, a, a_rs, a_bs, b, b_cs, b_bs, c, c_rs, c_cs)
    let dot_products_id = {
        let mut sig = module.make_signature();
        let operands = [types::I64; 4].into_iter().chain([pointer, types::I64, types::I64].repeat(3));
        for ty in operands {
            sig.params.push(AbiParam::new(ty));
        }
        module.declare_function("nnc_dot_products", Linkage::Import, &sig).map_err(|e| e.to_string())?
    };
    let gemm_id = {
        let mut sig = module.make_signature();
        for ty in [types::I64; 3].into_iter().chain([pointer, types::I64, types::I64].repeat(3)) {
            sig.params.push(AbiParam::new(ty));
        }
        sig.params.push(AbiParam::new(types::I32));
        module.declare_function("nnc_gemm", Linkage::Import, &sig).map_err(|e| e.to_string())?
    };
    let bounds_id = {
        let mut sig = module.make_signature();
        sig.params.push(AbiParam::new(pointer));
        for _ in 0..3 {
            sig.params.push(AbiParam::new(types::I64));
        }
        module.declare_function("nnc_out_of_bounds", Linkage::Import, &sig).map_err(|e| e.to_string())?
    };
    // fn(table, first unit, end unit, scratch)
    let mut sig = Signature::new(module.isa().default_call_conv());
    for ty in [pointer, types::I64, types::I64, pointer] {
        sig.params.push(AbiParam::new(ty));
    }
    let mut ctx: Context = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let frontend_config = module.target_config();
    let mut dump = options.dump_clif.as_ref().map(|_| {
        String::from(
            ";; One function per kernel; `@xxxx` before an instruction: it comes from kernel xxxx (hexadecimal).\n",
        )
    });
    let mut disassembly = dump.as_ref().map(|_| String::from(";; The machine code of each kernel.\n"));
    let mut declared = Vec::new();
    for (index, kernel) in program.kernels.iter().enumerate() {
        let id = module.declare_function(&format!("k{index}"), Linkage::Local, &sig).map_err(|e| e.to_string())?;
        ctx.func.signature = sig.clone();
        let units = {
            let mut builder = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let entry = builder.create_block();
            builder.append_block_params_for_function_params(entry);
            builder.switch_to_block(entry);
            builder.seal_block(entry);
            let [table, begin, end, scratch] = [0, 1, 2, 3].map(|i| builder.block_params(entry)[i]);
            let mut math = HashMap::new();
            for (name, id) in &math_ids {
                math.insert(*name, module.declare_func_in_func(*id, builder.func));
            }
            let gemm = module.declare_func_in_func(gemm_id, builder.func);
            let dot_products = module.declare_func_in_func(dot_products_id, builder.func);
            let bounds = options.bounds_checks.then(|| module.declare_func_in_func(bounds_id, builder.func));
            let mut generator = Gen {
                b: builder,
                table,
                scratch,
                split: Some((begin, end)),
                units: 1,
                pointer,
                math,
                gemm,
                dot_products,
                bounds,
                kernel_index: index,
                library_products: options.library_products,
                bases: HashMap::new(),
                lengths: HashMap::new(),
                program,
            };
            // Each instruction remembers its kernel: the dump prints it as `@000b` for k11.
            generator.b.set_srcloc(cranelift_codegen::ir::SourceLoc::new(index as u32));
            generator.kernel(kernel);
            generator.b.ins().return_(&[]);
            let units = generator.units;
            generator.b.finalize(frontend_config);
            units
        };
        if let Some(text) = &mut dump {
            text.push_str(&format!(";; k{index}: {}\n", program.kernel_text(kernel)));
            text.push_str(&ctx.func.display().to_string());
        }
        ctx.set_disasm(dump.is_some());
        module.define_function(id, &mut ctx).map_err(|e| format!("code generation failed for k{index}: {e:?}"))?;
        if let (Some(text), Some(code)) = (&mut disassembly, ctx.compiled_code().and_then(|c| c.vcode.as_ref())) {
            text.push_str(&format!(";; k{index}: {}\n{code}\n", program.kernel_text(kernel)));
        }
        module.clear_context(&mut ctx);
        declared.push((id, units, kernel.flops()));
    }
    if let (Some(dir), Some(text), Some(machine)) = (&options.dump_clif, &dump, &disassembly) {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(dir.join(format!("{}.clif", sanitize(&program.name))), text);
        let _ = std::fs::write(dir.join(format!("{}.s", sanitize(&program.name))), machine);
    }
    module.finalize_definitions().map_err(|e| e.to_string())?;
    let kernels = declared
        .into_iter()
        .map(|(id, units, flops)| {
            let code = module.get_finalized_function(id);
            // SAFETY: `code` is a function just defined with the signature `KernelFn`.
            let entry = unsafe { std::mem::transmute::<*const u8, KernelFn>(code) };
            CompiledKernel { entry, units, flops }
        })
        .collect();
    Ok(Compiled { _module: module, kernels, scratch: scratch_len(program), compile_time: started.elapsed() })
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// The scratch floats the program's matrix products need for their packed panels.
pub fn scratch_len(program: &Program) -> usize {
    program
        .kernels
        .iter()
        .map(|k| match k {
            Kernel::MatMul { n, k, .. } => k * n.div_ceil(PANEL) * PANEL,
            // Only products pack a panel of their right side.
            Kernel::Loop { .. }
            | Kernel::Im2Col { .. }
            | Kernel::Col2Im { .. }
            | Kernel::Softmax { .. }
            | Kernel::SoftmaxCrossEntropy { .. }
            | Kernel::MaxPool { .. }
            | Kernel::AvgPool { .. } => 0,
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Access, Buffer, BufferId, Combine, Expr, Role};

    /// `out[i] = x[2 i]` for i < 8 over an `x` of 8 elements: the verifier would reject it,
    /// so it is compiled directly, as a bug in lowering would be.
    fn reads_past_its_input() -> Program {
        let x = Access { buffer: BufferId(0), offset: 0, strides: vec![2] };
        let out = Access { buffer: BufferId(1), offset: 0, strides: vec![1] };
        Program {
            name: "past".into(),
            buffers: vec![
                Buffer { name: "x".into(), len: 8, role: Role::Param(0) },
                Buffer { name: "out".into(), len: 8, role: Role::Result(0) },
            ],
            kernels: vec![Kernel::Loop { shape: vec![8], out, expr: Expr::Load(x), combine: Combine::Assign }],
            params: vec![BufferId(0)],
            results: vec![BufferId(1)],
        }
    }

    /// Runs a program of one kernel on `x`, returning its result and the report.
    fn run_one(program: &Program, options: &Options, x: &mut [f32]) -> (Vec<f32>, BoundsReport) {
        let compiled = compile(program, options).expect("compiles");
        let mut out = vec![f32::NAN; program.buffers[1].len];
        let report = BoundsReport::default();
        let table = [x.as_mut_ptr(), out.as_mut_ptr(), (&report as *const BoundsReport).cast_mut().cast()];
        let kernel = compiled.kernels[0];
        // SAFETY: the table holds the program's two buffers at their lengths and the report;
        // with bounds checks, the access outside `x` reads element 0 instead.
        unsafe { (kernel.entry)(table.as_ptr(), 0, kernel.units as i64, std::ptr::null_mut()) };
        (out, report)
    }

    #[test]
    fn bounds_checks_report_the_first_access_outside_a_buffer_and_read_inside_instead() {
        let program = reads_past_its_input();
        assert!(crate::kernel::verify(&program).is_err(), "the verifier rejects the program");
        let options = Options { bounds_checks: true, ..Options::default() };
        let mut x: Vec<f32> = (1..=8).map(|v| v as f32).collect();
        let (out, report) = run_one(&program, &options, &mut x);
        // Elements 8, 10, 12 and 14 lie outside: reported, and element 0 read instead.
        assert_eq!(report.first(), Some(((0, 0, 8), 4)));
        assert_eq!(out, [1.0, 3.0, 5.0, 7.0, 1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn a_verified_program_reports_nothing_with_bounds_checks() {
        let mut program = reads_past_its_input();
        program.buffers[0].len = 15;
        crate::kernel::verify(&program).expect("every access is inside");
        let options = Options { bounds_checks: true, ..Options::default() };
        let mut x: Vec<f32> = (0..15).map(|v| v as f32).collect();
        let (out, report) = run_one(&program, &options, &mut x);
        assert_eq!(report.first(), None);
        assert_eq!(out, [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]);
    }
}
