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

use crate::kernel::{Access, Binary, BufferId, Combine, Expr, Kernel, Matrix, PoolMode, Program, Unary, Window};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    AbiParam, ConstantData, Endianness, FuncRef, InstBuilder, MemFlagsData, Signature, Value, types,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, isa};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Columns of a packed panel of the right-hand matrix: two f32x4 vectors.
pub const PANEL: usize = 8;
/// Rows of a matrix-product tile: four rows of two vectors are eight accumulators.
const TILE_ROWS: usize = 4;

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

/// Called by code with bounds checks for an access outside its buffer; keeps the first.
///
/// # Safety
/// `report` points at a live `BoundsReport`.
unsafe extern "C" fn nnc_out_of_bounds(report: *const BoundsReport, kernel: u64, buffer: u64, index: u64) {
    // SAFETY: as the caller promises.
    let report = unsafe { &*report };
    if report.count.load(Ordering::Acquire) == 0 {
        report.kernel.store(kernel, Ordering::Release);
        report.buffer.store(buffer, Ordering::Release);
        report.index.store(index, Ordering::Release);
    }
    report.count.fetch_add(1, Ordering::AcqRel);
}

extern "C" fn nnc_expf(x: f32) -> f32 {
    x.exp()
}
extern "C" fn nnc_logf(x: f32) -> f32 {
    x.ln()
}
extern "C" fn nnc_sinf(x: f32) -> f32 {
    x.sin()
}
extern "C" fn nnc_cosf(x: f32) -> f32 {
    x.cos()
}
extern "C" fn nnc_tanf(x: f32) -> f32 {
    x.tan()
}
extern "C" fn nnc_tanhf(x: f32) -> f32 {
    x.tanh()
}
extern "C" fn nnc_sigmoidf(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
extern "C" fn nnc_powf(x: f32, y: f32) -> f32 {
    x.powf(y)
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

/// `c (+)= a @ b` for strided m×k and k×n matrices, by the `gemm` crate on one thread.
///
/// # Safety
/// The pointers and strides must describe matrices inside their buffers, `c` not
/// overlapping `a` or `b`; generated code passes only views the kernel verifier checked.
#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn nnc_gemm(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    b_cs: isize,
    c: *mut f32,
    c_rs: isize,
    c_cs: isize,
    accumulate: u32,
) {
    if crate::microkernel::takes(k, b_cs, c_cs) {
        // SAFETY: as the caller promises; the kernel checked the CPU and the strides.
        unsafe { crate::microkernel::product([m, n, k], a, [a_rs, a_cs], b, b_rs, c, c_rs, accumulate != 0) };
        return;
    }
    let keep = if accumulate != 0 { 1.0 } else { 0.0 };
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            c_cs,
            c_rs,
            accumulate != 0,
            a,
            a_cs,
            a_rs,
            b,
            b_cs,
            b_rs,
            keep,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// `c = Σ over the batch of a_t @ b_t` by the AVX-512 dot-product kernel.
///
/// # Safety
/// As `microkernel::dot_products` requires; generated code passes only views the kernel
/// verifier checked, on a CPU `takes_dot_products` accepted.
#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn nnc_dot_products(
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    a: *const f32,
    a_rs: isize,
    a_bs: isize,
    b: *const f32,
    b_cs: isize,
    b_bs: isize,
    c: *mut f32,
    c_rs: isize,
    c_cs: isize,
) {
    // SAFETY: as the caller promises.
    unsafe { crate::microkernel::dot_products([m, n, k, batch], a, [a_rs, a_bs], b, [b_cs, b_bs], c, [c_rs, c_cs]) }
}

/// The functions generated code may call, by name, with their arity.
const MATH: [(&str, usize); 8] = [
    ("nnc_expf", 1),
    ("nnc_logf", 1),
    ("nnc_sinf", 1),
    ("nnc_cosf", 1),
    ("nnc_tanf", 1),
    ("nnc_tanhf", 1),
    ("nnc_sigmoidf", 1),
    ("nnc_powf", 2),
];

fn math_pointer(name: &str) -> *const u8 {
    match name {
        "nnc_expf" => nnc_expf as *const u8,
        "nnc_logf" => nnc_logf as *const u8,
        "nnc_sinf" => nnc_sinf as *const u8,
        "nnc_cosf" => nnc_cosf as *const u8,
        "nnc_tanf" => nnc_tanf as *const u8,
        "nnc_tanhf" => nnc_tanhf as *const u8,
        "nnc_sigmoidf" => nnc_sigmoidf as *const u8,
        "nnc_powf" => nnc_powf as *const u8,
        _ => unreachable!("no math function {name}"),
    }
}

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
    for (name, _) in MATH {
        jit.symbol(name, math_pointer(name));
    }
    jit.symbol("nnc_gemm", nnc_gemm as *const u8);
    jit.symbol("nnc_dot_products", nnc_dot_products as *const u8);
    jit.symbol("nnc_out_of_bounds", nnc_out_of_bounds as *const u8);
    let mut module = JITModule::new(jit);
    let pointer = module.target_config().pointer_type();
    let mut math_ids = HashMap::new();
    for (name, arity) in MATH {
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
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

struct Gen<'a, 'p> {
    b: FunctionBuilder<'a>,
    table: Value,
    /// This call's space for packed matrices.
    scratch: Value,
    /// The function's range of units, until the loop that splits the kernel takes it.
    split: Option<(Value, Value)>,
    /// The units that loop runs over (1 while none took the range).
    units: usize,
    pointer: types::Type,
    math: HashMap<&'static str, FuncRef>,
    gemm: FuncRef,
    /// `nnc_dot_products`, the AVX-512 sums of products over a batch.
    dot_products: FuncRef,
    /// `nnc_out_of_bounds`, when accesses are checked.
    bounds: Option<FuncRef>,
    kernel_index: usize,
    library_products: usize,
    /// Buffer addresses loaded in the kernel's first block.
    bases: HashMap<usize, Value>,
    /// The buffer (the scratch area counting as buffer `buffers.len()`) and length in
    /// floats behind each base address, for bounds checks.
    lengths: HashMap<Value, (usize, usize)>,
    program: &'p Program,
}

/// A loop body: gets the generator and the loop index.
type Body<'b, 'a, 'p> = &'b mut dyn FnMut(&mut Gen<'a, 'p>, Value);

impl<'a, 'p> Gen<'a, 'p> {
    fn base(&mut self, buffer: BufferId) -> Value {
        if let Some(&v) = self.bases.get(&buffer.0) {
            return v;
        }
        let v =
            self.b.ins().load(self.pointer, MemFlagsData::trusted().with_readonly(), self.table, (buffer.0 * 8) as i32);
        self.bases.insert(buffer.0, v);
        self.lengths.insert(v, (buffer.0, self.program.buffer(buffer).len));
        v
    }

    fn scratch(&mut self) -> Value {
        let v = self.scratch;
        self.lengths.insert(v, (self.program.buffers.len(), scratch_len(self.program)));
        v
    }

    /// The range of units this call computes when the kernel splits into `units` parts;
    /// the whole `0..units` for a loop after the first that asks (the first took the range).
    fn unit_range(&mut self, units: usize) -> (Value, Value) {
        match self.split.take() {
            Some(range) if units > 1 => {
                self.units = units;
                range
            }
            _ => (self.iconst(0), self.iconst(units)),
        }
    }

    /// `for i in begin..end { body(i) }` with bounds known when running.
    fn for_dynamic(&mut self, begin: Value, end: Value, body: Body<'_, 'a, 'p>) {
        let header = self.b.create_block();
        let inside = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, types::I64);
        self.b.ins().jump(header, &[begin.into()]);
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, i, end);
        self.b.ins().brif(more, inside, &[], exit, &[]);
        self.b.switch_to_block(inside);
        self.b.seal_block(inside);
        body(self, i);
        let next = self.b.ins().iadd_imm_s(i, 1);
        self.b.ins().jump(header, &[next.into()]);
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
    }

    /// `for i in 0..n { body(i) }`, the loop that splits the kernel into `n` units when it
    /// is the first to ask.
    fn for_units(&mut self, n: usize, body: Body<'_, 'a, 'p>) {
        if self.split.is_some() && n > 1 {
            let (begin, end) = self.unit_range(n);
            self.for_dynamic(begin, end, body);
        } else {
            self.for_range(0, n, 1, body);
        }
    }

    fn iconst(&mut self, n: usize) -> Value {
        self.b.ins().iconst(types::I64, n as i64)
    }

    fn fconst(&mut self, x: f32) -> Value {
        self.b.ins().f32const(x)
    }

    /// The address of element `index` (an i64 value) of a buffer.
    fn address(&mut self, base: Value, index: Value) -> Value {
        let bytes = self.b.ins().ishl_imm_u(index, 2);
        self.b.ins().iadd(base, bytes)
    }

    /// `index`, or with bounds checks, `index` when `lanes` elements from it lie inside
    /// the buffer at `base` and 0 (after reporting) when they do not.
    fn checked(&mut self, base: Value, index: Value, lanes: usize) -> Value {
        let (Some(report_fn), Some(&(buffer, len))) = (self.bounds, self.lengths.get(&base)) else {
            return index;
        };
        let inside = if len >= lanes {
            self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, index, (len - lanes + 1) as i64)
        } else {
            self.b.ins().iconst(types::I8, 0)
        };
        let outside = self.b.create_block();
        let after = self.b.create_block();
        self.b.append_block_param(after, types::I64);
        self.b.ins().brif(inside, after, &[index.into()], outside, &[]);
        self.b.switch_to_block(outside);
        self.b.seal_block(outside);
        let report = self.b.ins().load(
            self.pointer,
            MemFlagsData::trusted().with_readonly(),
            self.table,
            (self.program.buffers.len() * 8) as i32,
        );
        let kernel = self.iconst(self.kernel_index);
        let buffer = self.iconst(buffer);
        self.b.ins().call(report_fn, &[report, kernel, buffer, index]);
        let zero = self.iconst(0);
        self.b.ins().jump(after, &[zero.into()]);
        self.b.switch_to_block(after);
        self.b.seal_block(after);
        self.b.block_params(after)[0]
    }

    fn load(&mut self, base: Value, index: Value) -> Value {
        let index = self.checked(base, index, 1);
        let at = self.address(base, index);
        self.b.ins().load(types::F32, MemFlagsData::trusted(), at, 0)
    }

    fn store(&mut self, base: Value, index: Value, value: Value) {
        let index = self.checked(base, index, 1);
        let at = self.address(base, index);
        self.b.ins().store(MemFlagsData::trusted(), value, at, 0);
    }

    /// Element `index + offset` of the buffer at `base`, with `offset` a constant: the
    /// offset goes into the instruction, so that loads at several offsets from one index
    /// share its address arithmetic (and the registers it needs).
    fn load_offset(&mut self, base: Value, index: Value, offset: usize, vector: bool) -> Value {
        let ty = if vector { types::F32X4 } else { types::F32 };
        let flags = if vector { MemFlagsData::new().with_notrap() } else { MemFlagsData::trusted() };
        match i32::try_from(offset * 4) {
            Ok(bytes) if self.bounds.is_none() => {
                let at = self.address(base, index);
                self.b.ins().load(ty, flags, at, bytes)
            }
            _ => {
                let index = self.b.ins().iadd_imm_s(index, offset as i64);
                let index = self.checked(base, index, if vector { 4 } else { 1 });
                let at = self.address(base, index);
                self.b.ins().load(ty, flags, at, 0)
            }
        }
    }

    // Vectors are read and written at any 4-byte boundary: buffers are f32 slices.
    fn load_vector(&mut self, base: Value, index: Value) -> Value {
        let index = self.checked(base, index, 4);
        let at = self.address(base, index);
        self.b.ins().load(types::F32X4, MemFlagsData::new().with_notrap(), at, 0)
    }

    fn store_vector(&mut self, base: Value, index: Value, value: Value) {
        let index = self.checked(base, index, 4);
        let at = self.address(base, index);
        self.b.ins().store(MemFlagsData::new().with_notrap(), value, at, 0);
    }

    /// Four lanes or one value.
    fn load_lanes(&mut self, vector: bool, base: Value, index: Value) -> Value {
        if vector { self.load_vector(base, index) } else { self.load(base, index) }
    }

    fn store_lanes(&mut self, vector: bool, base: Value, index: Value, value: Value) {
        if vector { self.store_vector(base, index, value) } else { self.store(base, index, value) }
    }

    /// `start + index * stride` for i64 values and a constant stride.
    fn step(&mut self, start: Value, index: Value, stride: usize) -> Value {
        match stride {
            0 => start,
            1 => self.b.ins().iadd(start, index),
            _ => {
                let scaled = self.b.ins().imul_imm_s(index, stride as i64);
                self.b.ins().iadd(start, scaled)
            }
        }
    }

    /// `for i in (start..end).step_by(step) { body(i) }` with constant bounds.
    fn for_range(&mut self, start: usize, end: usize, step: usize, body: Body<'_, 'a, 'p>) {
        if start >= end {
            return;
        }
        if end - start <= step {
            let i = self.iconst(start);
            body(self, i);
            return;
        }
        // The loop runs at least twice, so it tests at its end: one branch per iteration
        // instead of a jump back to a test at the top.
        let inside = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(inside, types::I64);
        let first = self.iconst(start);
        self.b.ins().jump(inside, &[first.into()]);
        self.b.switch_to_block(inside);
        let i = self.b.block_params(inside)[0];
        body(self, i);
        let next = self.b.ins().iadd_imm_s(i, step as i64);
        let more = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, next, end as i64);
        self.b.ins().brif(more, inside, &[next.into()], exit, &[]);
        self.b.seal_block(inside);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
    }

    /// Runs `body` only when `condition` (an i8 truth value) holds.
    fn when(&mut self, condition: Value, body: &mut dyn FnMut(&mut Gen<'a, 'p>)) {
        let then = self.b.create_block();
        let after = self.b.create_block();
        self.b.ins().brif(condition, then, &[], after, &[]);
        self.b.switch_to_block(then);
        self.b.seal_block(then);
        body(self);
        self.b.ins().jump(after, &[]);
        self.b.switch_to_block(after);
        self.b.seal_block(after);
    }

    fn var(&mut self, ty: types::Type, initial: Value) -> Variable {
        let v = self.b.declare_var(ty);
        self.b.def_var(v, initial);
        v
    }

    fn fill(&mut self, buffer: BufferId, value: f32) {
        let len = self.program.buffer(buffer).len;
        let base = self.base(buffer);
        let vector_end = len - len % 4;
        let splat = {
            let x = self.fconst(value);
            self.b.ins().splat(types::F32X4, x)
        };
        self.for_range(0, vector_end, 4, &mut |g, i| g.store_vector(base, i, splat));
        let x = self.fconst(value);
        self.for_range(vector_end, len, 1, &mut |g, i| g.store(base, i, x));
    }

    fn kernel(&mut self, kernel: &Kernel) {
        // Every address the kernel needs, loaded where they dominate all of its loops.
        let (reads, writes) = kernel.buffers();
        for b in reads.into_iter().chain(writes) {
            self.base(b);
        }
        match kernel {
            Kernel::Loop { shape, out, expr, combine } => self.loop_kernel(shape, out, expr, *combine),
            Kernel::MatMul { batch, m, n, k, a, b, c, accumulate, epilogue } => {
                let p = Product { batch: *batch, m: *m, n: *n, k: *k, accumulate: *accumulate };
                self.matmul(p, a, b, c, epilogue.as_ref())
            }
            Kernel::Im2Col { window, input, out } => self.im2col(window, *input, *out, false),
            Kernel::Col2Im { window, input, out } => self.im2col(window, *out, *input, true),
            Kernel::Softmax { outer, len, inner, input, out, log } => {
                self.softmax(*outer, *len, *inner, *input, *out, *log)
            }
            Kernel::SoftmaxCrossEntropy { rows, classes, logits, labels, out, grad } => {
                self.softmax_cross_entropy(*rows, *classes, *logits, *labels, *out, *grad)
            }
            Kernel::MaxPool { window, input, out, mode, epilogue } => {
                self.maxpool(window, *input, *out, *mode, epilogue.as_ref())
            }
            Kernel::AvgPool { window, input, out, backward } => self.avgpool(window, *input, *out, *backward),
        }
    }

    // -----------------------------------------------------------------------------------
    // Elementwise loops and reductions.

    fn loop_kernel(&mut self, shape: &[usize], out: &Access, expr: &Expr, combine: Combine) {
        let (shape, accesses) = canonical(shape, out, expr);
        match combine {
            Combine::Assign => {}
            Combine::Add => self.fill(out.buffer, 0.0),
            Combine::Max => self.fill(out.buffer, f32::NEG_INFINITY),
        }
        if shape.contains(&0) {
            return;
        }
        let offsets: Vec<Value> =
            accesses.iter().map(|a| a.offset).collect::<Vec<_>>().into_iter().map(|o| self.iconst(o)).collect();
        let bases: Vec<Value> =
            accesses.iter().map(|a| a.buffer).collect::<Vec<_>>().into_iter().map(|b| self.base(b)).collect();
        let expr = number_loads(expr, &mut 0);
        self.loop_level(&shape, &accesses, &bases, offsets, Vec::new(), &expr, combine);
    }

    /// One level of a loop nest: `offsets` are the element offsets of every access (the
    /// output first) at the enclosing indices.
    #[allow(clippy::too_many_arguments)]
    fn loop_level(
        &mut self,
        shape: &[usize],
        accesses: &[Access],
        bases: &[Value],
        offsets: Vec<Value>,
        indices: Vec<Value>,
        expr: &Numbered,
        combine: Combine,
    ) {
        let level = indices.len();
        if level == shape.len() {
            let value = self.scalar_expr(expr, bases, &offsets, &indices);
            self.combine_scalar(bases[0], offsets[0], value, combine);
            return;
        }
        let inner = level + 1 == shape.len();
        let n = shape[level];
        if inner && n >= 4 && vectorizable(expr, accesses, level, combine) {
            let out_stride = accesses[0].strides[level];
            let vector_end = n - n % 4;
            let acc = if out_stride == 0 {
                let init = match combine {
                    Combine::Max => self.fconst(f32::NEG_INFINITY),
                    _ => self.fconst(0.0),
                };
                let v = self.b.ins().splat(types::F32X4, init);
                Some(self.var(types::F32X4, v))
            } else {
                None
            };
            self.for_range(0, vector_end, 4, &mut |g, i| {
                let here: Vec<Value> =
                    offsets.iter().zip(accesses).map(|(&o, a)| g.step(o, i, a.strides[level])).collect();
                let value = g.vector_expr(expr, bases, &here, accesses, level, &indices);
                match acc {
                    Some(acc) => {
                        let old = g.b.use_var(acc);
                        let new = match combine {
                            Combine::Max => g.b.ins().fmax(old, value),
                            _ => g.b.ins().fadd(old, value),
                        };
                        g.b.def_var(acc, new);
                    }
                    None => {
                        let value = match combine {
                            Combine::Assign => value,
                            Combine::Add => {
                                let old = g.load_vector(bases[0], here[0]);
                                g.b.ins().fadd(old, value)
                            }
                            Combine::Max => {
                                let old = g.load_vector(bases[0], here[0]);
                                g.b.ins().fmax(old, value)
                            }
                        };
                        g.store_vector(bases[0], here[0], value);
                    }
                }
            });
            if let Some(acc) = acc {
                // Fold the four lanes, then into the output element.
                let v = self.b.use_var(acc);
                let mut total = self.b.ins().extractlane(v, 0);
                for lane in 1..4u8 {
                    let x = self.b.ins().extractlane(v, lane);
                    total = match combine {
                        Combine::Max => self.b.ins().fmax(total, x),
                        _ => self.b.ins().fadd(total, x),
                    };
                }
                self.combine_scalar(bases[0], offsets[0], total, combine);
            }
            self.for_range(vector_end, n, 1, &mut |g, i| {
                let here: Vec<Value> =
                    offsets.iter().zip(accesses).map(|(&o, a)| g.step(o, i, a.strides[level])).collect();
                let mut all = indices.clone();
                all.push(i);
                let value = g.scalar_expr(expr, bases, &here, &all);
                g.combine_scalar(bases[0], here[0], value, combine);
            });
            return;
        }
        let mut body = |g: &mut Gen<'a, 'p>, i| {
            let here: Vec<Value> = offsets.iter().zip(accesses).map(|(&o, a)| g.step(o, i, a.strides[level])).collect();
            let mut all = indices.clone();
            all.push(i);
            g.loop_level(shape, accesses, bases, here, all, expr, combine);
        };
        // Every index of the outermost axis writes its own elements when assigning (a sum
        // or maximum may gather several into one), so that axis can be split.
        if level == 0 && combine == Combine::Assign {
            self.for_units(n, &mut body);
        } else {
            self.for_range(0, n, 1, &mut body);
        }
    }

    fn combine_scalar(&mut self, base: Value, offset: Value, value: Value, combine: Combine) {
        let value = match combine {
            Combine::Assign => value,
            Combine::Add => {
                let old = self.load(base, offset);
                self.b.ins().fadd(old, value)
            }
            Combine::Max => {
                let old = self.load(base, offset);
                self.max(old, value)
            }
        };
        self.store(base, offset, value);
    }

    /// The larger of two values, as the reference takes it (`f64::max` ignores a NaN).
    fn max(&mut self, a: Value, b: Value) -> Value {
        self.extreme(FloatCC::GreaterThan, a, b)
    }

    /// `b` where it compares `beats` against `a` or where `a` is NaN, else `a`: the maximum
    /// or minimum as `f64::max` and `f64::min` take them, for scalars or f32x4 lanes.
    fn extreme(&mut self, beats: FloatCC, a: Value, b: Value) -> Value {
        let better = self.b.ins().fcmp(beats, b, a);
        let a_nan = self.b.ins().fcmp(FloatCC::Unordered, a, a);
        let take_b = self.b.ins().bor(better, a_nan);
        if self.b.func.dfg.value_type(a).is_vector() {
            let mask = self.mask(take_b);
            self.b.ins().bitselect(mask, b, a)
        } else {
            self.b.ins().select(take_b, b, a)
        }
    }

    fn call(&mut self, name: &'static str, args: &[Value]) -> Value {
        let f = self.math[name];
        let call = self.b.ins().call(f, args);
        self.b.inst_results(call)[0]
    }

    fn bool_to_float(&mut self, condition: Value) -> Value {
        let one = self.fconst(1.0);
        let zero = self.fconst(0.0);
        self.b.ins().select(condition, one, zero)
    }

    fn scalar_expr(&mut self, e: &Numbered, bases: &[Value], offsets: &[Value], indices: &[Value]) -> Value {
        match e {
            Numbered::Load(k) => self.load(bases[*k], offsets[*k]),
            Numbered::Const(c) => self.fconst(*c),
            Numbered::Index(axis) => {
                let i = indices[*axis];
                self.b.ins().fcvt_from_uint(types::F32, i)
            }
            Numbered::Unary(op, x) => {
                let x = self.scalar_expr(x, bases, offsets, indices);
                let zero = self.fconst(0.0);
                match op {
                    Unary::Neg => self.b.ins().fneg(x),
                    Unary::Exp => self.call("nnc_expf", &[x]),
                    Unary::Ln => self.call("nnc_logf", &[x]),
                    Unary::Sqrt => self.b.ins().sqrt(x),
                    Unary::Sin => self.call("nnc_sinf", &[x]),
                    Unary::Cos => self.call("nnc_cosf", &[x]),
                    Unary::Tan => self.call("nnc_tanf", &[x]),
                    Unary::Tanh => self.call("nnc_tanhf", &[x]),
                    Unary::Sigmoid => self.call("nnc_sigmoidf", &[x]),
                    Unary::Relu => self.max(x, zero),
                    Unary::Abs => self.b.ins().fabs(x),
                    Unary::Step => {
                        let positive = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                        self.bool_to_float(positive)
                    }
                    Unary::Sign => {
                        let positive = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                        let negative = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
                        let p = self.bool_to_float(positive);
                        let n = self.bool_to_float(negative);
                        self.b.ins().fsub(p, n)
                    }
                    Unary::Round => self.b.ins().nearest(x),
                }
            }
            Numbered::Binary(op, a, b) => {
                let a = self.scalar_expr(a, bases, offsets, indices);
                let b = self.scalar_expr(b, bases, offsets, indices);
                match op {
                    Binary::Add => self.b.ins().fadd(a, b),
                    Binary::Sub => self.b.ins().fsub(a, b),
                    Binary::Mul => self.b.ins().fmul(a, b),
                    Binary::Div => self.b.ins().fdiv(a, b),
                    Binary::Pow => self.call("nnc_powf", &[a, b]),
                    Binary::Max => self.max(a, b),
                    Binary::Min => self.extreme(FloatCC::LessThan, a, b),
                    Binary::GreaterEq => {
                        let c = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, a, b);
                        self.bool_to_float(c)
                    }
                    Binary::Equal => {
                        let c = self.b.ins().fcmp(FloatCC::Equal, a, b);
                        self.bool_to_float(c)
                    }
                }
            }
        }
    }

    /// Four lanes of an expression at consecutive indices of the innermost axis `level`.
    fn vector_expr(
        &mut self,
        e: &Numbered,
        bases: &[Value],
        offsets: &[Value],
        accesses: &[Access],
        level: usize,
        indices: &[Value],
    ) -> Value {
        match e {
            Numbered::Load(k) => {
                if accesses[*k].strides[level] == 0 {
                    let x = self.load(bases[*k], offsets[*k]);
                    self.b.ins().splat(types::F32X4, x)
                } else {
                    self.load_vector(bases[*k], offsets[*k])
                }
            }
            Numbered::Const(c) => {
                let x = self.fconst(*c);
                self.b.ins().splat(types::F32X4, x)
            }
            Numbered::Index(axis) => {
                // An outer axis: the same index in every lane.
                let x = self.b.ins().fcvt_from_uint(types::F32, indices[*axis]);
                self.b.ins().splat(types::F32X4, x)
            }
            Numbered::Unary(op, x) => {
                let x = self.vector_expr(x, bases, offsets, accesses, level, indices);
                let zero = {
                    let z = self.fconst(0.0);
                    self.b.ins().splat(types::F32X4, z)
                };
                match op {
                    Unary::Neg => self.b.ins().fneg(x),
                    Unary::Sqrt => self.b.ins().sqrt(x),
                    Unary::Abs => self.b.ins().fabs(x),
                    Unary::Round => self.b.ins().nearest(x),
                    Unary::Relu => {
                        // max(x, 0) with NaN going to 0, as the reference does.
                        let positive = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                        {
                            let m = self.mask(positive);
                            self.b.ins().bitselect(m, x, zero)
                        }
                    }
                    Unary::Step => {
                        let positive = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                        self.vector_mask_to_float(positive)
                    }
                    Unary::Sign => {
                        let positive = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                        let negative = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
                        let p = self.vector_mask_to_float(positive);
                        let n = self.vector_mask_to_float(negative);
                        self.b.ins().fsub(p, n)
                    }
                    _ => unreachable!("calls are not vectorised"),
                }
            }
            Numbered::Binary(op, a, b) => {
                let a = self.vector_expr(a, bases, offsets, accesses, level, indices);
                let b = self.vector_expr(b, bases, offsets, accesses, level, indices);
                match op {
                    Binary::Add => self.b.ins().fadd(a, b),
                    Binary::Sub => self.b.ins().fsub(a, b),
                    Binary::Mul => self.b.ins().fmul(a, b),
                    Binary::Div => self.b.ins().fdiv(a, b),
                    Binary::Max => self.max(a, b),
                    Binary::Min => self.extreme(FloatCC::LessThan, a, b),
                    Binary::GreaterEq => {
                        let c = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, a, b);
                        self.vector_mask_to_float(c)
                    }
                    Binary::Equal => {
                        let c = self.b.ins().fcmp(FloatCC::Equal, a, b);
                        self.vector_mask_to_float(c)
                    }
                    Binary::Pow => unreachable!("calls are not vectorised"),
                }
            }
        }
    }

    /// A lane mask of a vector comparison (i32x4) as f32x4 bits, for `bitselect`.
    fn mask(&mut self, mask: Value) -> Value {
        self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), mask)
    }

    /// 1.0 in the lanes where a comparison's mask is set, else 0.0.
    fn vector_mask_to_float(&mut self, mask: Value) -> Value {
        let one = self.fconst(1.0);
        let ones = self.b.ins().splat(types::F32X4, one);
        let zero = self.fconst(0.0);
        let zeros = self.b.ins().splat(types::F32X4, zero);
        {
            let m = self.mask(mask);
            self.b.ins().bitselect(m, ones, zeros)
        }
    }

    // -----------------------------------------------------------------------------------
    // Matrix products.

    /// `c = a @ b` for each matrix of the batch, or their sum with `accumulate` (the first
    /// product is stored, the others added). Products of separate outputs split over the
    /// batch; a single product or a sum splits over blocks of rows. The epilogue runs over
    /// each product's rows right after they are computed.
    fn matmul(&mut self, p: Product, a: &Matrix, b: &Matrix, c: &Matrix, epilogue: Option<&Expr>) {
        if p.batch == 0 {
            if p.accumulate {
                self.fill(c.buffer, 0.0);
            }
            return;
        }
        if p.m * p.n * p.k >= self.library_products {
            self.library_matmul(p, a, b, c, epilogue);
            return;
        }
        if p.batch > 1 && !p.accumulate {
            self.for_units(p.batch, &mut |g, index| {
                let all_rows = (g.iconst(0), g.iconst(p.m.div_ceil(TILE_ROWS)));
                g.matmul_rows(p, index, all_rows, a, b, c);
                if let Some(expr) = epilogue {
                    let rows = (g.iconst(0), g.iconst(p.m));
                    g.epilogue(expr, p.n, c, index, rows);
                }
            });
            return;
        }
        let blocks = self.unit_range(p.m.div_ceil(TILE_ROWS));
        let first = self.iconst(0);
        self.matmul_rows(Product { accumulate: false, ..p }, first, blocks, a, b, c);
        self.for_range(1, p.batch, 1, &mut |g, index| g.matmul_rows(p, index, blocks, a, b, c));
        if let Some(expr) = epilogue {
            let begin = self.b.ins().imul_imm_s(blocks.0, TILE_ROWS as i64);
            let end = {
                let end = self.b.ins().imul_imm_s(blocks.1, TILE_ROWS as i64);
                let m = self.iconst(p.m);
                self.b.ins().umin(end, m)
            };
            self.epilogue(expr, p.n, c, first, (begin, end));
        }
    }

    /// A product's epilogue over rows `rows` of matrix `index` of `c`, in place: each
    /// element replaced by the expression, which reads it as the product.
    fn epilogue(&mut self, expr: &Expr, n: usize, c: &Matrix, index: Value, rows: (Value, Value)) {
        let loads = expr.loads();
        // The output first, then the loads in order, as `loop_level` takes them: each over
        // the columns of one row, starting where that row starts.
        let mut accesses = vec![Access { buffer: c.buffer, offset: 0, strides: vec![c.col_stride] }];
        let mut placements = vec![(c.offset, c.batch_stride, c.row_stride)];
        for load in &loads {
            accesses.push(Access { buffer: load.buffer, offset: 0, strides: vec![load.strides[2]] });
            placements.push((load.offset, load.strides[0], load.strides[1]));
        }
        let bases: Vec<Value> =
            accesses.iter().map(|a| a.buffer).collect::<Vec<_>>().into_iter().map(|b| self.base(b)).collect();
        let matrix_starts: Vec<(Value, usize)> = placements
            .into_iter()
            .map(|(offset, batch_stride, row_stride)| {
                let offset = self.iconst(offset);
                (self.step(offset, index, batch_stride), row_stride)
            })
            .collect();
        let expr = number_loads(expr, &mut 0);
        self.for_dynamic(rows.0, rows.1, &mut |g, row| {
            let offsets = matrix_starts.iter().map(|&(start, row_stride)| g.step(start, row, row_stride)).collect();
            g.loop_level(&[n], &accesses, &bases, offsets, Vec::new(), &expr, Combine::Assign);
        });
    }

    /// Product `index` of the batch, for the row blocks `blocks` (of `TILE_ROWS` rows, the
    /// last one holding the rows that are left).
    fn matmul_rows(&mut self, p: Product, index: Value, blocks: (Value, Value), a: &Matrix, b: &Matrix, c: &Matrix) {
        let offsets = [a, b, c].map(|m| {
            let start = self.iconst(m.offset);
            self.step(start, index, m.batch_stride)
        });
        self.pack(p, b, offsets[1]);
        let full_blocks = p.m / TILE_ROWS;
        let full_end = {
            let full = self.iconst(full_blocks);
            self.b.ins().umin(blocks.1, full)
        };
        self.for_dynamic(blocks.0, full_end, &mut |g, block| {
            let i0 = g.b.ins().imul_imm_s(block, TILE_ROWS as i64);
            g.matmul_row_block(p, i0, TILE_ROWS, a, offsets[0], c, offsets[2]);
        });
        if !p.m.is_multiple_of(TILE_ROWS) {
            let has_rest = self.b.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, blocks.1, full_blocks as i64);
            self.when(has_rest, &mut |g| {
                g.for_range(full_blocks * TILE_ROWS, p.m, 1, &mut |g, i| {
                    g.matmul_row_block(p, i, 1, a, offsets[0], c, offsets[2])
                });
            });
        }
    }

    /// Each product of the batch by a call to the `gemm` crate. Separate outputs split
    /// over the batch; a single product or a sum splits over the rows or the columns of
    /// `c`, whichever are more, each call computing its slice (a sum's first product is
    /// stored, the others added).
    fn library_matmul(&mut self, p: Product, a: &Matrix, b: &Matrix, c: &Matrix, epilogue: Option<&Expr>) {
        let bases = [a, b, c].map(|m| self.base(m.buffer));
        if (p.accumulate || p.batch == 1)
            && epilogue.is_none()
            && crate::microkernel::takes_dot_products(a.col_stride, b.row_stride)
        {
            // A sum of products whose elements are dot products of contiguous rows and
            // columns (a convolution's weight gradient): one call for the whole batch, split
            // over the rows of C.
            let (first, end) = self.unit_range(p.m);
            let count = self.b.ins().isub(end, first);
            let mut args = vec![count, self.iconst(p.n), self.iconst(p.k), self.iconst(p.batch)];
            for (which, (matrix, &base)) in [a, b, c].into_iter().zip(&bases).enumerate() {
                let start = self.iconst(matrix.offset);
                // The slice of rows moves A and C.
                let start = if which == 1 { start } else { self.step(start, first, matrix.row_stride) };
                let start = self.checked(base, start, 1);
                args.push(self.address(base, start));
                let strides = match which {
                    0 => [matrix.row_stride, matrix.batch_stride],
                    1 => [matrix.col_stride, matrix.batch_stride],
                    _ => [matrix.row_stride, matrix.col_stride],
                };
                args.extend(strides.map(|s| self.iconst(s)));
            }
            let has_rows = self.b.ins().icmp(IntCC::UnsignedLessThan, first, end);
            let call = self.dot_products;
            self.when(has_rows, &mut |g| {
                g.b.ins().call(call, &args);
            });
            return;
        }
        if p.batch > 1 && !p.accumulate {
            self.for_units(p.batch, &mut |g, index| {
                let whole = (g.iconst(0), g.iconst(p.m));
                g.library_call(p, index, whole, true, bases, [a, b, c]);
                if let Some(expr) = epilogue {
                    g.epilogue(expr, p.n, c, index, whole);
                }
            });
            return;
        }
        // An epilogue runs over whole rows, so a product with one splits over its rows.
        let by_rows = p.m >= p.n || epilogue.is_some();
        let extent = if by_rows { p.m } else { p.n };
        // The units are blocks of rows (or columns), one call each, so that
        // every block is the same call on any number of threads: `gemm` chooses how to
        // block k by the shape it is given, and a call over another slice of C would sum
        // in another order.
        let block = library_block(extent);
        let (first_block, end_block) = self.unit_range(extent.div_ceil(block));
        let limit = self.iconst(extent);
        let block_start = |g: &mut Self, index: Value| {
            let start = g.b.ins().imul_imm_s(index, block as i64);
            g.b.ins().umin(start, limit)
        };
        self.for_dynamic(first_block, end_block, &mut |g, index| {
            let first = block_start(g, index);
            let next = g.b.ins().iadd_imm_s(index, 1);
            let slice = (first, block_start(g, next));
            g.for_range(0, p.batch, 1, &mut |g, index| g.library_call(p, index, slice, by_rows, bases, [a, b, c]));
        });
        if let Some(expr) = epilogue {
            let rows = (block_start(self, first_block), block_start(self, end_block));
            let first = self.iconst(0);
            self.epilogue(expr, p.n, c, first, rows);
        }
    }

    /// One call of `gemm` for product `index`, restricted to rows (or columns) `slice` of
    /// `c`; a sum adds into `c` after its first product.
    fn library_call(
        &mut self,
        p: Product,
        index: Value,
        slice: (Value, Value),
        by_rows: bool,
        bases: [Value; 3],
        [a, b, c]: [&Matrix; 3],
    ) {
        let (first, end) = slice;
        let count = self.b.ins().isub(end, first);
        let (m, n) = if by_rows { (count, self.iconst(p.n)) } else { (self.iconst(p.m), count) };
        let mut args = vec![m, n, self.iconst(p.k)];
        for (which, (matrix, &base)) in [a, b, c].into_iter().zip(&bases).enumerate() {
            let start = self.iconst(matrix.offset);
            let start = self.step(start, index, matrix.batch_stride);
            // Rows of the slice move A and C; columns move B and C.
            let moved = match (by_rows, which) {
                (true, 0) | (true, 2) => Some(matrix.row_stride),
                (false, 1) | (false, 2) => Some(matrix.col_stride),
                _ => None,
            };
            let start = match moved {
                Some(stride) => {
                    let shift = self.b.ins().imul_imm_s(first, stride as i64);
                    self.b.ins().iadd(start, shift)
                }
                None => start,
            };
            let start = self.checked(base, start, 1);
            args.push(self.address(base, start));
            args.push(self.iconst(matrix.row_stride));
            args.push(self.iconst(matrix.col_stride));
        }
        let accumulate = if p.accumulate {
            self.b.ins().icmp_imm_u(IntCC::NotEqual, index, 0)
        } else {
            self.b.ins().iconst(types::I8, 0)
        };
        args.push(self.b.ins().uextend(types::I32, accumulate));
        let gemm = self.gemm;
        self.b.ins().call(gemm, &args);
    }

    /// Packs B (starting at element `start` of its buffer) into the scratch area: panel
    /// `p` holds columns `8p ..` row after row, with zeros past the last column.
    fn pack(&mut self, p: Product, b: &Matrix, start: Value) {
        let scratch = self.scratch();
        let b_base = self.base(b.buffer);
        let (k, full_panels, edge) = (p.k, p.n / PANEL, p.n % PANEL);
        for (first_panel, panels, width) in [(0, full_panels, PANEL), (full_panels, usize::from(edge > 0), edge)] {
            if panels == 0 {
                continue;
            }
            self.for_range(first_panel, first_panel + panels, 1, &mut |g, panel| {
                g.for_range(0, k, 1, &mut |g, kk| {
                    let row = g.b.ins().imul_imm_s(panel, k as i64);
                    let row = g.b.ins().iadd(row, kk);
                    let dest = g.b.ins().imul_imm_s(row, PANEL as i64);
                    let source_row = g.step(start, kk, b.row_stride);
                    let column0 = g.b.ins().imul_imm_s(panel, PANEL as i64);
                    for j in 0..PANEL {
                        let value = if j < width {
                            let column = g.b.ins().iadd_imm_s(column0, j as i64);
                            let at = g.step(source_row, column, b.col_stride);
                            g.load(b_base, at)
                        } else {
                            g.fconst(0.0)
                        };
                        let at = g.b.ins().iadd_imm_s(dest, j as i64);
                        g.store(scratch, at, value);
                    }
                });
            });
        }
    }

    /// Rows `i0 .. i0 + rows` of the product, every panel.
    #[allow(clippy::too_many_arguments)]
    fn matmul_row_block(
        &mut self,
        p: Product,
        i0: Value,
        rows: usize,
        a: &Matrix,
        a_start: Value,
        c: &Matrix,
        c_start: Value,
    ) {
        let full_panels = p.n / PANEL;
        let edge = p.n % PANEL;
        let tile = Tile { i0, rows, a_start, c_start };
        self.for_range(0, full_panels, 1, &mut |g, panel| g.matmul_tile(p, &tile, panel, PANEL, a, c));
        if edge > 0 {
            let panel = self.iconst(full_panels);
            self.matmul_tile(p, &tile, panel, edge, a, c);
        }
    }

    /// One tile: `tile.rows` rows by the `width` valid columns of panel `panel`.
    fn matmul_tile(&mut self, p: Product, tile: &Tile, panel: Value, width: usize, a: &Matrix, c: &Matrix) {
        let scratch = self.scratch();
        let a_base = self.base(a.buffer);
        let c_base = self.base(c.buffer);
        let zero = {
            let z = self.fconst(0.0);
            self.b.ins().splat(types::F32X4, z)
        };
        let accumulators: Vec<[Variable; 2]> =
            (0..tile.rows).map(|_| [self.var(types::F32X4, zero), self.var(types::F32X4, zero)]).collect();
        // Where the tile's first row starts in A.
        let a_row0 = self.step(tile.a_start, tile.i0, a.row_stride);
        let panel_start = self.b.ins().imul_imm_s(panel, (p.k * PANEL) as i64);
        // The positions in the panel and in A's rows are carried from one step of k to the
        // next and advanced by their strides: computed from k instead, the code generator
        // recomputes each inside the loop with a multiplication. (Two steps of k per
        // iteration measured 15% slower than one.)
        // The tile's rows of A are read at constant offsets from the first row's position,
        // one index for all: an index per row kept five integers alive across the loop,
        // which the register allocator spilled to the stack.
        let b_at = self.var(types::I64, panel_start);
        let a_at = self.var(types::I64, a_row0);
        self.for_range(0, p.k, 1, &mut |g, _| {
            let at = g.b.use_var(b_at);
            let b0 = g.load_offset(scratch, at, 0, true);
            let b1 = g.load_offset(scratch, at, 4, true);
            let next = g.b.ins().iadd_imm_s(at, PANEL as i64);
            g.b.def_var(b_at, next);
            let row0 = g.b.use_var(a_at);
            let next = g.b.ins().iadd_imm_s(row0, a.col_stride as i64);
            g.b.def_var(a_at, next);
            for (r, acc) in accumulators.iter().enumerate() {
                let x = g.load_offset(a_base, row0, r * a.row_stride, false);
                let splat = g.b.ins().splat(types::F32X4, x);
                for (h, bv) in [b0, b1].into_iter().enumerate() {
                    let product = g.b.ins().fmul(splat, bv);
                    let old = g.b.use_var(acc[h]);
                    let sum = g.b.ins().fadd(old, product);
                    g.b.def_var(acc[h], sum);
                }
            }
        });
        let column0 = self.b.ins().imul_imm_s(panel, PANEL as i64);
        for (r, acc) in accumulators.iter().enumerate() {
            let i = self.b.ins().iadd_imm_s(tile.i0, r as i64);
            let row = self.step(tile.c_start, i, c.row_stride);
            for (h, &var) in acc.iter().enumerate() {
                let lanes = width.saturating_sub(4 * h).min(4);
                if lanes == 0 {
                    continue;
                }
                let v = self.b.use_var(var);
                let column = self.b.ins().iadd_imm_s(column0, (4 * h) as i64);
                if lanes == 4 && c.col_stride == 1 {
                    let at = self.b.ins().iadd(row, column);
                    let v = if p.accumulate {
                        let old = self.load_vector(c_base, at);
                        self.b.ins().fadd(old, v)
                    } else {
                        v
                    };
                    self.store_vector(c_base, at, v);
                } else {
                    for lane in 0..lanes {
                        let x = self.b.ins().extractlane(v, lane as u8);
                        let col = self.b.ins().iadd_imm_s(column, lane as i64);
                        let at = self.step(row, col, c.col_stride);
                        let x = if p.accumulate {
                            let old = self.load(c_base, at);
                            self.b.ins().fadd(old, x)
                        } else {
                            x
                        };
                        self.store(c_base, at, x);
                    }
                }
            }
        }
    }

    /// The columns of a convolution's input (`cols[n][(c, kh, kw)][(i, j)]`, 0 in the
    /// padding), or with `backward` the columns added back into the image.
    ///
    /// The kernel positions are unrolled, so that for each row of the output the columns
    /// that fall inside the image form one run known when compiling: a vector copy for
    /// stride 1, with constant stretches of padding on either side.
    fn im2col(&mut self, w: &Window, image: BufferId, cols: BufferId, backward: bool) {
        let (image_base, cols_base) = (self.base(image), self.base(cols));
        let w = *w;
        let p = w.ho * w.wo;
        // Each plane of the image meets its own rows of columns, so planes can be split.
        self.for_units(w.n * w.c, &mut |g, plane| {
            let plane_start = g.b.ins().imul_imm_s(plane, (w.h * w.w) as i64);
            if backward && w.stride == (1, 1) {
                g.col2im_gather(&w, plane, plane_start, image_base, cols_base);
                return;
            }
            if backward {
                g.zero_run(image_base, plane_start, w.h * w.w);
            } else if w.stride == (1, 1) && w.wo == w.w {
                g.im2col_same_width(&w, plane, plane_start, image_base, cols_base);
                return;
            }
            for kh in 0..w.kernel.0 {
                for kw in 0..w.kernel.1 {
                    // Row (plane, kh, kw) of the columns.
                    let row = g.b.ins().imul_imm_s(plane, (w.kernel.0 * w.kernel.1) as i64);
                    let row = g.b.ins().iadd_imm_s(row, (kh * w.kernel.1 + kw) as i64);
                    let row_start = g.b.ins().imul_imm_s(row, p as i64);
                    // Output columns j whose input column j*s + kw - pad is inside the image.
                    let first = (0..w.wo).find(|&j| j * w.stride.1 + kw >= w.pad.1).unwrap_or(w.wo);
                    let end = (first..w.wo).find(|&j| j * w.stride.1 + kw >= w.pad.1 + w.w).unwrap_or(w.wo);
                    g.for_range(0, w.ho, 1, &mut |g, i| {
                        let h = g.b.ins().imul_imm_s(i, w.stride.0 as i64);
                        let h = g.b.ins().iadd_imm_s(h, kh as i64 - w.pad.0 as i64);
                        let h_ok = g.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, h, w.h as i64);
                        let out_line = g.b.ins().imul_imm_s(i, w.wo as i64);
                        let out_line = g.b.ins().iadd(row_start, out_line);
                        let inside = g.b.create_block();
                        let outside = g.b.create_block();
                        let after = g.b.create_block();
                        g.b.ins().brif(h_ok, inside, &[], outside, &[]);
                        g.b.switch_to_block(inside);
                        g.b.seal_block(inside);
                        {
                            let line = g.b.ins().imul_imm_s(h, w.w as i64);
                            let line = g.b.ins().iadd(plane_start, line);
                            let source = g.b.ins().iadd_imm_s(line, (first * w.stride.1 + kw) as i64 - w.pad.1 as i64);
                            let dest = g.b.ins().iadd_imm_s(out_line, first as i64);
                            let run = Run { len: end - first, source_stride: w.stride.1 };
                            g.move_run(image_base, source, cols_base, dest, run, backward);
                            if !backward {
                                g.zero_run(cols_base, out_line, first);
                                let tail = g.b.ins().iadd_imm_s(out_line, end as i64);
                                g.zero_run(cols_base, tail, w.wo - end);
                            }
                        }
                        g.b.ins().jump(after, &[]);
                        g.b.switch_to_block(outside);
                        g.b.seal_block(outside);
                        if !backward {
                            g.zero_run(cols_base, out_line, w.wo);
                        }
                        g.b.ins().jump(after, &[]);
                        g.b.switch_to_block(after);
                        g.b.seal_block(after);
                    });
                }
            }
        });
    }

    /// The columns of one plane of a convolution of stride 1 whose output rows are as wide
    /// as the input's. Then output element q of a kernel position reads input element
    /// `q + delta` for one constant `delta`, so each row of columns is one long copy (rather
    /// than a short run per output row, whose loop overhead dominated), after which the
    /// columns that fall into the horizontal padding, which the copy filled from the
    /// neighbouring rows, are set to 0.
    fn im2col_same_width(&mut self, w: &Window, plane: Value, plane_start: Value, image_base: Value, cols_base: Value) {
        let (p, plane_len) = (w.ho * w.wo, w.h * w.w);
        for kh in 0..w.kernel.0 {
            for kw in 0..w.kernel.1 {
                // Row (plane, kh, kw) of the columns.
                let plane_rows = self.b.ins().imul_imm_s(plane, (w.kernel.0 * w.kernel.1 * p) as i64);
                let row = self.b.ins().iadd_imm_s(plane_rows, ((kh * w.kernel.1 + kw) * p) as i64);
                let delta = (kh as i64 - w.pad.0 as i64) * w.w as i64 + (kw as i64 - w.pad.1 as i64);
                // Output rows whose input row is inside the image.
                let i0 = w.pad.0.saturating_sub(kh).min(w.ho);
                let i1 = (w.h + w.pad.0).saturating_sub(kh).min(w.ho).max(i0);
                self.zero_run(cols_base, row, i0 * w.wo);
                let after = self.b.ins().iadd_imm_s(row, (i1 * w.wo) as i64);
                self.zero_run(cols_base, after, (w.ho - i1) * w.wo);
                // The copy, of the elements whose input lies inside the plane.
                let first = (i0 * w.wo) as i64;
                let first = first.max(-delta);
                let end = ((i1 * w.wo) as i64).min(plane_len as i64 - delta).max(first);
                let source = self.b.ins().iadd_imm_s(plane_start, first + delta);
                let dest = self.b.ins().iadd_imm_s(row, first);
                let run = Run { len: (end - first) as usize, source_stride: 1 };
                self.move_run(image_base, source, cols_base, dest, run, false);
                // The columns in the horizontal padding, on every copied row.
                let j_low = w.pad.1.saturating_sub(kw).min(w.wo);
                let j_high = (w.w + w.pad.1).saturating_sub(kw).min(w.wo).max(j_low);
                let padding: Vec<usize> = (0..j_low).chain(j_high..w.wo).collect();
                if padding.is_empty() || i1 == i0 {
                    continue;
                }
                let zero = self.fconst(0.0);
                let rows_start = self.b.ins().iadd_imm_s(row, (i0 * w.wo) as i64);
                self.for_range(0, i1 - i0, 1, &mut |g, i| {
                    let line = g.step(rows_start, i, w.wo);
                    for &j in &padding {
                        let at = g.b.ins().iadd_imm_s(line, j as i64);
                        g.store(cols_base, at, zero);
                    }
                });
            }
        }
    }

    /// col2im of one plane of a stride-1 convolution as a gather: each image element is the
    /// sum of the columns' elements that came from it, in kernel order, written once. (As
    /// a scatter, each kernel position added a short run into the image: nine passes over
    /// it, each reading and writing it.) The image is cut into blocks of rows and of
    /// columns within which the same kernel positions reach inside the output, so that the
    /// loops need no test per element.
    fn col2im_gather(&mut self, w: &Window, plane: Value, plane_start: Value, image_base: Value, cols_base: Value) {
        let p = w.ho * w.wo;
        // The kernel rows (or columns) whose output position is inside the output, for
        // input row (or column) `x`: output position `x + pad - k`.
        let reaching = |x: usize, pad: usize, kernel: usize, out: usize| -> Vec<usize> {
            (0..kernel).filter(|&k| (x + pad).checked_sub(k).is_some_and(|o| o < out)).collect()
        };
        // Consecutive positions that the same kernel positions reach.
        let blocks = |len: usize, pad: usize, kernel: usize, out: usize| -> Vec<(usize, usize, Vec<usize>)> {
            let mut blocks: Vec<(usize, usize, Vec<usize>)> = Vec::new();
            for x in 0..len {
                let ks = reaching(x, pad, kernel, out);
                match blocks.last_mut() {
                    Some((_, end, last)) if *last == ks => *end = x + 1,
                    _ => blocks.push((x, x + 1, ks)),
                }
            }
            blocks
        };
        let row_blocks = blocks(w.h, w.pad.0, w.kernel.0, w.ho);
        let column_blocks = blocks(w.w, w.pad.1, w.kernel.1, w.wo);
        let plane_rows = self.b.ins().imul_imm_s(plane, (w.kernel.0 * w.kernel.1 * p) as i64);
        for (h0, h1, khs) in &row_blocks {
            for (x0, x1, kws) in &column_blocks {
                // Per kernel position (kh, kw), the element of the columns that image
                // element (h, x) came from is `start + h * wo + x`.
                let starts: Vec<i64> = khs
                    .iter()
                    .flat_map(|&kh| kws.iter().map(move |&kw| (kh, kw)))
                    .map(|(kh, kw)| {
                        ((kh * w.kernel.1 + kw) * p) as i64
                            + (w.pad.0 as i64 - kh as i64) * w.wo as i64
                            + (w.pad.1 as i64 - kw as i64)
                    })
                    .collect();
                let width = x1 - x0;
                let vector_end = x0 + width - width % 4;
                self.for_range(*h0, *h1, 1, &mut |g, h| {
                    let image_row = g.step(plane_start, h, w.w);
                    let cols_row = g.step(plane_rows, h, w.wo);
                    for (begin, end, step) in [(*x0, vector_end, 4), (vector_end, *x1, 1)] {
                        g.for_range(begin, end, step, &mut |g, x| {
                            let vector = step == 4;
                            let mut total = None;
                            for &start in &starts {
                                let at = g.b.ins().iadd(cols_row, x);
                                let at = g.b.ins().iadd_imm_s(at, start);
                                let v = g.load_lanes(vector, cols_base, at);
                                total = Some(match total {
                                    Some(t) => g.b.ins().fadd(t, v),
                                    None => v,
                                });
                            }
                            let value = total.unwrap_or_else(|| {
                                let zero = g.fconst(0.0);
                                if vector { g.b.ins().splat(types::F32X4, zero) } else { zero }
                            });
                            let to = g.b.ins().iadd(image_row, x);
                            g.store_lanes(vector, image_base, to, value);
                        });
                    }
                });
            }
        }
    }

    /// Moves a run between an image row and a row of columns, four at a time where the
    /// image side is contiguous: `cols[c + j] = image[i + j * stride]`, or with `add`,
    /// `image[i + j * stride] += cols[c + j]` (col2im).
    fn move_run(&mut self, image_base: Value, image: Value, cols_base: Value, cols: Value, run: Run, add: bool) {
        let vector_end = if run.source_stride == 1 { run.len - run.len % 4 } else { 0 };
        for (start, end, step) in [(0, vector_end, 4), (vector_end, run.len, 1)] {
            self.for_range(start, end, step, &mut |g, j| {
                let image_at = g.step(image, j, run.source_stride);
                let cols_at = g.b.ins().iadd(cols, j);
                let vector = step == 4;
                if add {
                    let v = g.load_lanes(vector, cols_base, cols_at);
                    let old = g.load_lanes(vector, image_base, image_at);
                    let sum = g.b.ins().fadd(old, v);
                    g.store_lanes(vector, image_base, image_at, sum);
                } else {
                    let v = g.load_lanes(vector, image_base, image_at);
                    g.store_lanes(vector, cols_base, cols_at, v);
                }
            });
        }
    }

    /// `dest[0..len] = 0`.
    fn zero_run(&mut self, base: Value, dest: Value, len: usize) {
        let zero = self.fconst(0.0);
        let zeros = self.b.ins().splat(types::F32X4, zero);
        let vector_end = len - len % 4;
        self.for_range(0, vector_end, 4, &mut |g, j| {
            let to = g.b.ins().iadd(dest, j);
            g.store_vector(base, to, zeros);
        });
        self.for_range(vector_end, len, 1, &mut |g, j| {
            let to = g.b.ins().iadd(dest, j);
            g.store(base, to, zero);
        });
    }

    // -----------------------------------------------------------------------------------
    // Row-wise kernels.

    /// The maximum of a line and the sum of `exp(x - max)` over it.
    fn line_max_and_total(&mut self, base: Value, start: Value, len: usize, stride: usize) -> (Value, Value) {
        let minus_infinity = self.fconst(f32::NEG_INFINITY);
        let max = self.var(types::F32, minus_infinity);
        self.for_range(0, len, 1, &mut |g, j| {
            let at = g.step(start, j, stride);
            let x = g.load(base, at);
            let old = g.b.use_var(max);
            let new = g.max(old, x);
            g.b.def_var(max, new);
        });
        let zero = self.fconst(0.0);
        let total = self.var(types::F32, zero);
        let max_value = self.b.use_var(max);
        self.for_range(0, len, 1, &mut |g, j| {
            let at = g.step(start, j, stride);
            let x = g.load(base, at);
            let shifted = g.b.ins().fsub(x, max_value);
            let e = g.call("nnc_expf", &[shifted]);
            let old = g.b.use_var(total);
            let new = g.b.ins().fadd(old, e);
            g.b.def_var(total, new);
        });
        let total = self.b.use_var(total);
        (max_value, total)
    }

    fn softmax(&mut self, outer: usize, len: usize, inner: usize, input: BufferId, out: BufferId, log: bool) {
        let (x_base, y_base) = (self.base(input), self.base(out));
        self.for_units(outer, &mut |g, o| {
            g.for_range(0, inner, 1, &mut |g, i| {
                let start = g.b.ins().imul_imm_s(o, (len * inner) as i64);
                let start = g.b.ins().iadd(start, i);
                let (max, total) = g.line_max_and_total(x_base, start, len, inner);
                let log_total = {
                    let l = g.call("nnc_logf", &[total]);
                    g.b.ins().fadd(l, max)
                };
                g.for_range(0, len, 1, &mut |g, j| {
                    let at = g.step(start, j, inner);
                    let x = g.load(x_base, at);
                    let y = if log {
                        g.b.ins().fsub(x, log_total)
                    } else {
                        let shifted = g.b.ins().fsub(x, max);
                        let e = g.call("nnc_expf", &[shifted]);
                        g.b.ins().fdiv(e, total)
                    };
                    g.store(y_base, at, y);
                });
            });
        });
    }

    fn softmax_cross_entropy(
        &mut self,
        rows: usize,
        classes: usize,
        logits: BufferId,
        labels: BufferId,
        out: BufferId,
        grad: Option<(BufferId, f32)>,
    ) {
        let (x_base, t_base, out_base) = (self.base(logits), self.base(labels), self.base(out));
        let grad = grad.map(|(g, scale)| (self.base(g), scale));
        let zero = self.fconst(0.0);
        let loss = self.var(types::F32, zero);
        self.for_range(0, rows, 1, &mut |g, r| {
            let start = g.b.ins().imul_imm_s(r, classes as i64);
            let (max, total) = g.line_max_and_total(x_base, start, classes, 1);
            let label = g.load(t_base, r);
            let label = g.b.ins().nearest(label);
            // A label outside the classes reads a class within them, as the reference does;
            // never memory outside the row.
            let class = g.b.ins().fcvt_to_uint_sat(types::I64, label);
            let classes_value = g.iconst(classes.max(1));
            let class = g.b.ins().urem(class, classes_value);
            let at = g.b.ins().iadd(start, class);
            let x = g.load(x_base, at);
            let l = g.call("nnc_logf", &[total]);
            let log_total = g.b.ins().fadd(l, max);
            let picked = g.b.ins().fsub(x, log_total);
            let old = g.b.use_var(loss);
            let new = g.b.ins().fsub(old, picked);
            g.b.def_var(loss, new);
            if let Some((grad_base, scale)) = grad {
                // As the unfused gradient computes it: the softmax, less 1 where the class
                // index equals the rounded label (none for a label outside the classes).
                let scale = g.fconst(scale);
                let one = g.fconst(1.0);
                let zero = g.fconst(0.0);
                g.for_range(0, classes, 1, &mut |g, j| {
                    let at = g.b.ins().iadd(start, j);
                    let x = g.load(x_base, at);
                    let shifted = g.b.ins().fsub(x, max);
                    let e = g.call("nnc_expf", &[shifted]);
                    let softmax = g.b.ins().fdiv(e, total);
                    let index = g.b.ins().fcvt_from_uint(types::F32, j);
                    let hit = g.b.ins().fcmp(FloatCC::Equal, index, label);
                    let one_hot = g.b.ins().select(hit, one, zero);
                    let difference = g.b.ins().fsub(softmax, one_hot);
                    let value = g.b.ins().fmul(scale, difference);
                    g.store(grad_base, at, value);
                });
            }
        });
        let total = self.b.use_var(loss);
        let scale = self.fconst(1.0 / rows.max(1) as f32);
        let mean = self.b.ins().fmul(total, scale);
        let at = self.iconst(0);
        self.store(out_base, at, mean);
    }

    // -----------------------------------------------------------------------------------
    // Windows.

    /// `body(ho_index, wo_index, kh_index, kw_index, h, w)` for every position of every
    /// window whose input position is inside the input (padding reads nothing).
    fn windows(&mut self, w: &Window, body: &mut dyn FnMut(&mut Gen<'a, 'p>, [Value; 6])) {
        let (pad_h, pad_w) = (w.pad.0 as i64, w.pad.1 as i64);
        let (height, width) = (w.h as i64, w.w as i64);
        self.for_range(0, w.ho, 1, &mut |g, i| {
            g.for_range(0, w.wo, 1, &mut |g, j| {
                g.for_range(0, w.kernel.0, 1, &mut |g, kh| {
                    let h = g.b.ins().imul_imm_s(i, w.stride.0 as i64);
                    let h = g.b.ins().iadd(h, kh);
                    let h = g.b.ins().iadd_imm_s(h, -pad_h);
                    let h_ok = g.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, h, height);
                    g.when(h_ok, &mut |g| {
                        g.for_range(0, w.kernel.1, 1, &mut |g, kw| {
                            let x = g.b.ins().imul_imm_s(j, w.stride.1 as i64);
                            let x = g.b.ins().iadd(x, kw);
                            let x = g.b.ins().iadd_imm_s(x, -pad_w);
                            let x_ok = g.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, x, width);
                            g.when(x_ok, &mut |g| body(g, [i, j, kh, kw, h, x]));
                        });
                    });
                });
            });
        });
    }

    /// Element `((a * n1 + b) * n2 + c) * n3 + d` of a 4-D tensor.
    fn index4(&mut self, [a, b, c, d]: [Value; 4], [n1, n2, n3]: [usize; 3]) -> Value {
        let x = self.b.ins().imul_imm_s(a, n1 as i64);
        let x = self.b.ins().iadd(x, b);
        let x = self.b.ins().imul_imm_s(x, n2 as i64);
        let x = self.b.ins().iadd(x, c);
        let x = self.b.ins().imul_imm_s(x, n3 as i64);
        self.b.ins().iadd(x, d)
    }

    fn maxpool(&mut self, w: &Window, input: BufferId, out: BufferId, mode: PoolMode, epilogue: Option<&Expr>) {
        let (x_base, out_base) = (self.base(input), self.base(out));
        let other_base = match mode {
            PoolMode::Grad(b) | PoolMode::Pick(b) => Some(self.base(b)),
            PoolMode::Forward => None,
        };
        let bases = PoolBases { x: x_base, out: out_base, other: other_base };
        let w = *w;
        // Windows of 2×2 at stride 2, the common case, run four windows at a time.
        let vector_columns = if w.kernel == (2, 2) && w.stride == (2, 2) { w.wo - w.wo % 4 } else { 0 };
        // Where the windows tile the input (no overlap, no rows or columns left over), each
        // window writes the cotangent of all its positions, and there is nothing to zero
        // first; otherwise the windows add into a zeroed plane.
        let tiled = w.tiles();
        let covered = tiled || (vector_columns == w.wo && w.h == 2 * w.ho && w.w == 2 * w.wo);
        // The epilogue's loads, output first, each with its stride along a row.
        let epilogue = epilogue.map(|expr| {
            let own = Access { buffer: out, offset: 0, strides: vec![w.c * w.h * w.w, w.h * w.w, w.w, 1] };
            let loads: Vec<Access> = [own].into_iter().chain(expr.loads().into_iter().cloned()).collect();
            let bases: Vec<Value> = loads.iter().map(|a| self.base(a.buffer)).collect();
            (number_loads(expr, &mut 0), loads, bases)
        });
        self.for_units(w.n * w.c, &mut |g, plane| {
            let epilogue = epilogue.as_ref().map(|(expr, loads, bases)| {
                // Where each access starts in this plane of example n and channel c.
                let n = g.b.ins().udiv_imm_u(plane, w.c as i64);
                let c = g.b.ins().urem_imm_u(plane, w.c as i64);
                let starts = loads
                    .iter()
                    .map(|a| {
                        let offset = g.iconst(a.offset);
                        let offset = g.step(offset, n, a.strides[0]);
                        g.step(offset, c, a.strides[1])
                    })
                    .collect();
                let along_rows = loads.iter().map(|a| Access { strides: vec![a.strides[3]], ..a.clone() }).collect();
                let row_strides = loads.iter().map(|a| a.strides[2]).collect();
                let like_output = loads.iter().map(|a| a.strides == loads[0].strides).collect();
                PoolEpilogue { expr, bases: bases.clone(), starts, along_rows, row_strides, like_output }
            });
            let epilogue = epilogue.as_ref();
            if matches!(mode, PoolMode::Grad(_)) && !covered {
                // The cotangent of this plane of the input, which only its windows reach.
                let start = g.b.ins().imul_imm_s(plane, (w.h * w.w) as i64);
                g.zero_run(out_base, start, w.h * w.w);
            }
            g.for_range(0, w.ho, 1, &mut |g, i| {
                g.for_range(0, vector_columns, 4, &mut |g, j| {
                    g.maxpool_four_windows(&w, [plane, i, j], bases, mode, epilogue)
                });
                // The windows left over: four again, overlapping those before, where writing a
                // window twice writes the same values (never when the gradient adds).
                let rewritable = !matches!(mode, PoolMode::Grad(_)) || tiled;
                if vector_columns > 0 && vector_columns < w.wo && rewritable {
                    let j = g.iconst(w.wo - 4);
                    g.maxpool_four_windows(&w, [plane, i, j], bases, mode, epilogue);
                } else {
                    g.for_range(vector_columns, w.wo, 1, &mut |g, j| {
                        g.maxpool_window(&w, [plane, i, j], bases, mode, tiled, epilogue)
                    });
                }
            });
        });
    }

    /// The window at output position `(plane, i, j)`; with `tiled`, the cotangent of every
    /// position of the window is written (0 but at its maximum), else added at the maximum.
    fn maxpool_window(
        &mut self,
        w: &Window,
        [plane, i, j]: [Value; 3],
        bases: PoolBases,
        mode: PoolMode,
        tiled: bool,
        epilogue: Option<&PoolEpilogue<'_>>,
    ) {
        // The first maximum of the window: its value and its index.
        let top_row = self.b.ins().imul_imm_s(i, w.stride.0 as i64);
        let left = self.b.ins().imul_imm_s(j, w.stride.1 as i64);
        let plane_start = self.b.ins().imul_imm_s(plane, (w.h * w.w) as i64);
        let first = self.b.ins().imul_imm_s(top_row, w.w as i64);
        let first = self.b.ins().iadd(first, left);
        let first = self.b.ins().iadd(first, plane_start);
        // The window's positions are unrolled: constant offsets from its corner.
        let mut best = self.fconst(f32::NEG_INFINITY);
        let mut best_at = first;
        for kh in 0..w.kernel.0 {
            for kw in 0..w.kernel.1 {
                let at = self.b.ins().iadd_imm_s(first, (kh * w.w + kw) as i64);
                let x = self.load(bases.x, at);
                let greater = self.b.ins().fcmp(FloatCC::GreaterThan, x, best);
                best = self.b.ins().select(greater, x, best);
                best_at = self.b.ins().select(greater, at, best_at);
            }
        }
        let window = self.pooled_index(w, plane, i, j);
        let at = best_at;
        match (mode, bases.other) {
            (PoolMode::Forward, _) => {
                let x = self.load(bases.x, at);
                self.store(bases.out, window, x);
            }
            (PoolMode::Grad(_), Some(grad)) if tiled => {
                let gv = self.load(grad, window);
                let zero = self.fconst(0.0);
                for kh in 0..w.kernel.0 {
                    for kw in 0..w.kernel.1 {
                        let position = self.b.ins().iadd_imm_s(first, (kh * w.w + kw) as i64);
                        let is_max = self.b.ins().icmp(IntCC::Equal, position, at);
                        let share = self.b.ins().select(is_max, gv, zero);
                        self.store(bases.out, position, share);
                        if let Some(epilogue) = epilogue {
                            let h = self.b.ins().imul_imm_s(i, w.stride.0 as i64);
                            let h = self.b.ins().iadd_imm_s(h, kh as i64);
                            let x = self.b.ins().imul_imm_s(j, w.stride.1 as i64);
                            let x = self.b.ins().iadd_imm_s(x, kw as i64);
                            self.pool_epilogue(epilogue, [h, x], position, false);
                        }
                    }
                }
            }
            (PoolMode::Grad(_), Some(grad)) => {
                let gv = self.load(grad, window);
                let old = self.load(bases.out, at);
                let new = self.b.ins().fadd(old, gv);
                self.store(bases.out, at, new);
            }
            (PoolMode::Pick(_), Some(other)) => {
                let x = self.load(other, at);
                self.store(bases.out, window, x);
            }
            _ => unreachable!("pooling modes with a second input have its base"),
        }
    }

    /// Element `(plane, i, j)` of the pooled tensor.
    fn pooled_index(&mut self, w: &Window, plane: Value, i: Value, j: Value) -> Value {
        let window = self.b.ins().imul_imm_s(plane, (w.ho * w.wo) as i64);
        let row = self.b.ins().imul_imm_s(i, w.wo as i64);
        let window = self.b.ins().iadd(window, row);
        self.b.ins().iadd(window, j)
    }

    /// The 2×2 windows at output positions `(plane, i, j .. j + 4)`, in lanes: the two input
    /// rows are read as four vectors and split into the windows' four corners, which are
    /// compared in the order of the scalar loop (so the first maximum wins, as there).
    fn maxpool_four_windows(
        &mut self,
        w: &Window,
        [plane, i, j]: [Value; 3],
        bases: PoolBases,
        mode: PoolMode,
        epilogue: Option<&PoolEpilogue<'_>>,
    ) {
        let plane_start = self.b.ins().imul_imm_s(plane, (w.h * w.w) as i64);
        let top = self.b.ins().imul_imm_s(i, (2 * w.w) as i64);
        let top = self.b.ins().iadd(top, plane_start);
        let left = self.b.ins().imul_imm_s(j, 2);
        let rows = {
            let first = self.b.ins().iadd(top, left);
            [first, self.b.ins().iadd_imm_s(first, w.w as i64)]
        };
        // Corners (0,0), (0,1), (1,0), (1,1) of the four windows, a vector each.
        let corners = |g: &mut Gen<'a, 'p>, base: Value| -> [Value; 4] {
            let mut out = Vec::with_capacity(4);
            for row in rows {
                let left_half = g.load_vector(base, row);
                let right = g.b.ins().iadd_imm_s(row, 4);
                let right_half = g.load_vector(base, right);
                out.push(g.shuffle_lanes(left_half, right_half, [0, 2, 4, 6]));
                out.push(g.shuffle_lanes(left_half, right_half, [1, 3, 5, 7]));
            }
            [out[0], out[1], out[2], out[3]]
        };
        let xs = corners(self, bases.x);
        let window = self.pooled_index(w, plane, i, j);
        let minus_infinity = {
            let x = self.fconst(f32::NEG_INFINITY);
            self.b.ins().splat(types::F32X4, x)
        };
        let mut best = minus_infinity;
        let mut greater = Vec::with_capacity(4);
        for &x in &xs {
            let beats = self.b.ins().fcmp(FloatCC::GreaterThan, x, best);
            let m = self.mask(beats);
            best = self.b.ins().bitselect(m, x, best);
            greater.push(beats);
        }
        // The corner each window takes: the last that beat the maximum so far, else the first.
        let later =
            |g: &mut Gen<'a, 'p>, from: usize| greater[from + 1..].iter().copied().reduce(|a, b| g.b.ins().bor(a, b));
        let mut winners = Vec::with_capacity(4);
        for (k, &beats) in greater.iter().enumerate() {
            let won = match (k, later(self, k)) {
                (0, Some(any_later)) => self.b.ins().bnot(any_later),
                (_, Some(any_later)) => self.b.ins().band_not(beats, any_later),
                (_, None) => beats,
            };
            winners.push(self.mask(won));
        }
        let pick = |g: &mut Gen<'a, 'p>, values: [Value; 4]| {
            (1..4).fold(values[0], |picked, k| g.b.ins().bitselect(winners[k], values[k], picked))
        };
        match (mode, bases.other) {
            (PoolMode::Forward, _) => {
                let value = pick(self, xs);
                self.store_vector(bases.out, window, value);
            }
            (PoolMode::Pick(_), Some(other)) => {
                let values = corners(self, other);
                let value = pick(self, values);
                self.store_vector(bases.out, window, value);
            }
            (PoolMode::Grad(_), Some(grad)) => {
                let cotangent = self.load_vector(grad, window);
                let zero = {
                    let z = self.fconst(0.0);
                    self.b.ins().splat(types::F32X4, z)
                };
                let shares: Vec<Value> =
                    winners.iter().map(|&won| self.b.ins().bitselect(won, cotangent, zero)).collect();
                // Back to two rows of eight input positions: corners interleaved.
                for (r, row) in rows.into_iter().enumerate() {
                    let (left_corner, right_corner) = (shares[2 * r], shares[2 * r + 1]);
                    let low = self.shuffle_lanes(left_corner, right_corner, [0, 4, 1, 5]);
                    let high = self.shuffle_lanes(left_corner, right_corner, [2, 6, 3, 7]);
                    self.store_vector(bases.out, row, low);
                    let right = self.b.ins().iadd_imm_s(row, 4);
                    self.store_vector(bases.out, right, high);
                    if let Some(epilogue) = epilogue {
                        let h = self.b.ins().imul_imm_s(i, 2);
                        let h = self.b.ins().iadd_imm_s(h, r as i64);
                        let x = self.b.ins().imul_imm_s(j, 2);
                        for (half, position) in [(0, row), (1, right)] {
                            let x = self.b.ins().iadd_imm_s(x, 4 * half);
                            self.pool_epilogue(epilogue, [h, x], position, true);
                        }
                    }
                }
            }
            _ => unreachable!("pooling modes with a second input have its base"),
        }
    }

    /// A pooling gradient's epilogue at input row `h`, column `x` of the plane (four
    /// columns from `x` with `vector`), which is element `position` of the output, in
    /// place: the element written is read back as the cotangent and replaced by the
    /// expression.
    fn pool_epilogue(&mut self, epilogue: &PoolEpilogue<'_>, [h, x]: [Value; 2], position: Value, vector: bool) {
        let lanes = if vector && vectorizable(epilogue.expr, &epilogue.along_rows, 0, Combine::Assign) {
            vec![(x, position, true)]
        } else if vector {
            (0..4)
                .map(|lane| (self.b.ins().iadd_imm_s(x, lane), self.b.ins().iadd_imm_s(position, lane), false))
                .collect()
        } else {
            vec![(x, position, false)]
        };
        for (x, position, vector) in lanes {
            // Accesses laid out as the output (the activation the derivative reads) are at
            // the output's position; others are placed from the row and column.
            let offsets: Vec<Value> = (0..epilogue.bases.len())
                .map(|k| {
                    if epilogue.like_output[k] {
                        return self.b.ins().iadd_imm_s(position, epilogue.along_rows[k].offset as i64);
                    }
                    let at = self.step(epilogue.starts[k], h, epilogue.row_strides[k]);
                    self.step(at, x, epilogue.along_rows[k].strides[0])
                })
                .collect();
            let bases = &epilogue.bases;
            let value = if vector {
                self.vector_expr(epilogue.expr, bases, &offsets, &epilogue.along_rows, 0, &[])
            } else {
                self.scalar_expr(epilogue.expr, bases, &offsets, &[])
            };
            self.store_lanes(vector, bases[0], offsets[0], value);
        }
    }

    /// Lanes of two f32x4 vectors: `lanes[k]` below 4 picks lane k of `a`, 4 and above lane
    /// k - 4 of `b`.
    fn shuffle_lanes(&mut self, a: Value, b: Value, lanes: [u8; 4]) -> Value {
        let bytes: Vec<u8> = lanes.iter().flat_map(|&lane| (0..4).map(move |byte| lane * 4 + byte)).collect();
        let mask = self.b.func.dfg.immediates.push(ConstantData::from(bytes));
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let a = self.b.ins().bitcast(types::I8X16, little, a);
        let b = self.b.ins().bitcast(types::I8X16, little, b);
        let shuffled = self.b.ins().shuffle(a, b, mask);
        self.b.ins().bitcast(types::F32X4, little, shuffled)
    }

    fn avgpool(&mut self, w: &Window, input: BufferId, out: BufferId, backward: bool) {
        let (x_base, out_base) = (self.base(input), self.base(out));
        let w = *w;
        let scale = 1.0 / (w.kernel.0 * w.kernel.1) as f32;
        let out_plane = if backward { w.h * w.w } else { w.ho * w.wo };
        self.for_units(w.n * w.c, &mut |g, plane| {
            let start = g.b.ins().imul_imm_s(plane, out_plane as i64);
            g.zero_run(out_base, start, out_plane);
            let zero = g.iconst(0);
            g.windows(&w, &mut |g, [i, j, _, _, h, x]| {
                let small = g.index4([zero, plane, i, j], [w.n * w.c, w.ho, w.wo]);
                let large = g.index4([zero, plane, h, x], [w.n * w.c, w.h, w.w]);
                let (from, to) = if backward { (small, large) } else { (large, small) };
                let v = g.load(x_base, from);
                let s = g.fconst(scale);
                let v = g.b.ins().fmul(v, s);
                let old = g.load(out_base, to);
                let new = g.b.ins().fadd(old, v);
                g.store(out_base, to, new);
            });
        });
    }
}

/// The addresses a pooling kernel reads and writes.
/// A pooling gradient's epilogue within one plane: per access (the output first), its base
/// address, where it starts in the plane, its stride from row to row, and the access with
/// its stride along a row alone.
struct PoolEpilogue<'e> {
    expr: &'e Numbered,
    bases: Vec<Value>,
    starts: Vec<Value>,
    along_rows: Vec<Access>,
    row_strides: Vec<usize>,
    /// Whether each access has the output's strides.
    like_output: Vec<bool>,
}

#[derive(Clone, Copy)]
struct PoolBases {
    x: Value,
    out: Value,
    /// The cotangent (`Grad`) or the values to pick (`Pick`).
    other: Option<Value>,
}

/// The sizes of a matrix product.
#[derive(Clone, Copy, Debug)]
struct Product {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
}

/// A run of elements copied between an image row and a row of columns.
#[derive(Clone, Copy)]
struct Run {
    len: usize,
    /// The step between the image elements (the convolution's stride).
    source_stride: usize,
}

/// Where a tile of a product starts.
struct Tile {
    i0: Value,
    rows: usize,
    a_start: Value,
    c_start: Value,
}

/// An expression whose loads are numbered: access `k` is the k-th of the kernel's
/// accesses after the output.
#[derive(Clone, Debug)]
enum Numbered {
    Load(usize),
    Const(f32),
    Index(usize),
    Unary(Unary, Box<Numbered>),
    Binary(Binary, Box<Numbered>, Box<Numbered>),
}

/// Numbers the loads of `expr` from 1 in the order `canonical` lists them (0 is the output).
fn number_loads(expr: &Expr, next: &mut usize) -> Numbered {
    match expr {
        Expr::Load(_) => {
            *next += 1;
            Numbered::Load(*next)
        }
        Expr::Const(c) => Numbered::Const(*c),
        Expr::Index(a) => Numbered::Index(*a),
        Expr::Unary(op, x) => Numbered::Unary(*op, Box::new(number_loads(x, next))),
        Expr::Binary(op, a, b) => {
            let a = number_loads(a, next);
            let b = number_loads(b, next);
            Numbered::Binary(*op, Box::new(a), Box::new(b))
        }
    }
}

/// The loop's shape with axes of one element dropped and neighbouring axes merged where
/// every access steps through them as through one; the accesses (output first, then the
/// loads in order) with strides to match. Loops that read an index keep their axes.
fn canonical(shape: &[usize], out: &Access, expr: &Expr) -> (Vec<usize>, Vec<Access>) {
    let mut accesses = vec![out.clone()];
    accesses.extend(expr.loads().into_iter().cloned());
    if expr.reads_index() {
        return (shape.to_vec(), accesses);
    }
    let keep: Vec<usize> = (0..shape.len()).filter(|&a| shape[a] != 1).collect();
    let mut dims: Vec<usize> = keep.iter().map(|&a| shape[a]).collect();
    for access in &mut accesses {
        access.strides = keep.iter().map(|&a| access.strides[a]).collect();
    }
    // Merge axis a+1 into a where stride[a] == stride[a+1] * dims[a+1] for every access.
    let mut axis = dims.len();
    while axis > 1 {
        axis -= 1;
        let (outer, inner) = (axis - 1, axis);
        if accesses.iter().all(|a| a.strides[outer] == a.strides[inner] * dims[inner]) {
            dims[outer] *= dims[inner];
            dims.remove(inner);
            for a in &mut accesses {
                a.strides[outer] = a.strides[inner];
                a.strides.remove(inner);
            }
        }
    }
    (dims, accesses)
}

/// Whether the innermost axis `level` can run four lanes at a time: every load steps by 0
/// or 1, the output by 1 (or by 0 for a sum or maximum), and no lane calls a function or
/// reads the innermost index.
fn vectorizable(expr: &Numbered, accesses: &[Access], level: usize, combine: Combine) -> bool {
    let out = accesses[0].strides[level];
    if !(out == 1 || (out == 0 && combine != Combine::Assign)) {
        return false;
    }
    if accesses[1..].iter().any(|a| a.strides[level] > 1) {
        return false;
    }
    fn ok(e: &Numbered, level: usize) -> bool {
        match e {
            Numbered::Load(_) | Numbered::Const(_) => true,
            Numbered::Index(axis) => *axis != level,
            Numbered::Unary(op, x) => {
                matches!(
                    op,
                    Unary::Neg | Unary::Sqrt | Unary::Abs | Unary::Round | Unary::Relu | Unary::Step | Unary::Sign
                ) && ok(x, level)
            }
            Numbered::Binary(op, a, b) => *op != Binary::Pow && ok(a, level) && ok(b, level),
        }
    }
    ok(expr, level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Buffer, Role};

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
