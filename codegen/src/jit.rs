//! The JIT executor: compiles a training step or a program to machine code once per batch
//! size and runs it on the runtime's buffers, with every temporary in one arena whose
//! layout reuses memory between values that are never live at once.

use crate::clif::{self, BoundsReport, Compiled, CompiledKernel, Options};
use crate::crew::Crew;
use crate::kernel::{self, Program, Role};
use crate::lower::lower;
use nnc_compiler::exec::{
    Batch, Executor, Program as RunProgram, StepArguments, StepError, TrainStep, locate_not_finite, not_finite,
};
use nnc_compiler::exec::{PartTime, Profile};
use nnc_compiler::ir::Function;
use nnc_compiler::optim::{Optimizer, State};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Compiles with Cranelift.
#[derive(Clone, Debug)]
pub struct JitExecutor {
    pub options: Options,
    /// Measure the time of every kernel (`TrainStep::profile`).
    pub profile: bool,
    threads: usize,
    /// The threads kernels are split over, started once; `None` for one thread.
    pool: Option<Arc<Crew>>,
    /// Parts of split kernels that helper threads have run, for every step and program
    /// of this executor (`helper_parts`).
    helper_parts: Arc<AtomicU64>,
}

impl Default for JitExecutor {
    fn default() -> JitExecutor {
        JitExecutor {
            options: Options::default(),
            profile: false,
            threads: 1,
            pool: None,
            helper_parts: Arc::default(),
        }
    }
}

impl JitExecutor {
    /// The executor with the settings of the environment, on one thread: `NNC_DUMP_CLIF=dir`
    /// writes the generated code; `NNC_LIBRARY_PRODUCTS=n` sets the size (in multiply-adds)
    /// from which products call the `gemm` crate, and `NNC_PARALLEL_FLOPS=n` the size (in
    /// floating-point operations) from which kernels split over threads, for measuring.
    pub fn new() -> JitExecutor {
        let dump_clif = std::env::var_os("NNC_DUMP_CLIF").map(Into::into);
        let library_products = std::env::var("NNC_LIBRARY_PRODUCTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(crate::clif::LIBRARY_PRODUCTS);
        let parallel_flops = std::env::var("NNC_PARALLEL_FLOPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(crate::clif::PARALLEL_FLOPS);
        JitExecutor::with_options(Options { dump_clif, library_products, parallel_flops, ..Options::default() })
    }

    /// The executor with these options, on one thread.
    pub fn with_options(options: Options) -> JitExecutor {
        JitExecutor { options, ..Default::default() }
    }

    /// Measures the time of every kernel of the steps it compiles (`TrainStep::profile`).
    pub fn with_profile(mut self, profile: bool) -> JitExecutor {
        self.profile = profile;
        self
    }

    /// Splits large kernels over `threads` threads (the calling one and a pool of the
    /// others, started here and kept for every step compiled by this executor).
    pub fn with_threads(mut self, threads: usize) -> Result<JitExecutor, String> {
        let threads = threads.max(1);
        self.threads = threads;
        self.pool = if threads > 1 {
            let crew = Crew::new(threads).map_err(|e| format!("could not start {threads} threads: {e}"))?;
            Some(Arc::new(crew))
        } else {
            None
        };
        Ok(self)
    }

    /// Into how many parts each kernel of `f` (in the order `nnc_codegen::lower` gives
    /// them) is split by this executor's steps and programs: 1 for a kernel that runs on
    /// the calling thread alone. Compiles `f` to find out, as a step would.
    pub fn kernel_parts(&self, f: &Function) -> Result<Vec<usize>, String> {
        Ok(Runner::new(f, self)?.parts)
    }

    /// How many parts of split kernels helper threads have run so far, over every step and
    /// program this executor compiled: what shows that kernels did run on several threads.
    /// Counted as each part ends, one relaxed atomic addition per part.
    pub fn helper_parts(&self) -> u64 {
        self.helper_parts.load(Ordering::Relaxed)
    }
}

impl Executor for JitExecutor {
    fn name(&self) -> &'static str {
        "jit"
    }

    fn threads(&self) -> usize {
        self.threads
    }

    fn train_step(&self, grad: &Function, optimizer: &Optimizer) -> Result<Box<dyn TrainStep>, String> {
        let runner = Runner::new(grad, self)?;
        let arguments = StepArguments::of(grad);
        Ok(Box::new(JitStep { runner, arguments, optimizer: optimizer.clone(), function: grad.clone() }))
    }

    fn program(&self, f: &Function) -> Result<Box<dyn RunProgram>, String> {
        Ok(Box::new(JitProgram { runner: Runner::new(f, self)? }))
    }
}

/// A compiled program with its arena and its table of buffer addresses.
pub(crate) struct Runner {
    program: Program,
    compiled: Compiled,
    arena: Vec<f32>,
    /// Where each buffer that is not an argument lives in the arena.
    offsets: Vec<Option<usize>>,
    /// Where the scratch areas start in the arena, one per thread, `scratch_stride` apart.
    scratch_offset: usize,
    scratch_stride: usize,
    /// Into how many parts each kernel is split.
    parts: Vec<usize>,
    pool: Option<Arc<Crew>>,
    /// The executor's count of parts run by helper threads.
    helper_parts: Arc<AtomicU64>,
    /// The time of each kernel summed over runs, and the runs, when profiling.
    times: Option<(Vec<Duration>, u64)>,
    /// Buffer addresses, then the address of `report`.
    table: Vec<*mut f32>,
    /// Accesses outside a buffer found by code compiled with bounds checks.
    report: Box<BoundsReport>,
}

impl Runner {
    fn new(f: &Function, executor: &JitExecutor) -> Result<Runner, String> {
        let program = lower(f).map_err(|e| e.to_string())?;
        kernel::verify(&program).map_err(|e| format!("internal error: {e}"))?;
        let compiled = clif::compile(&program, &executor.options)?;
        let parts: Vec<usize> =
            compiled.kernels.iter().map(|k| parts(k, executor.threads, executor.options.parallel_flops)).collect();
        let threads = parts.iter().copied().max().unwrap_or(1);
        let (offsets, len) = plan(&program);
        // Scratch for packed panels after the planned buffers, one area per thread.
        let scratch_offset = len.next_multiple_of(16);
        let scratch_stride = compiled.scratch.next_multiple_of(16);
        let mut arena = vec![0.0f32; scratch_offset + threads * scratch_stride];
        for (b, buffer) in program.buffers.iter().enumerate() {
            if let (Role::Constant(values), Some(at)) = (&buffer.role, offsets[b]) {
                arena[at..at + values.len()].copy_from_slice(values);
            }
        }
        let table = vec![std::ptr::null_mut(); program.buffers.len() + 1];
        let times = executor.profile.then(|| (vec![Duration::ZERO; program.kernels.len()], 0));
        let pool = if threads > 1 { executor.pool.clone() } else { None };
        Ok(Runner {
            program,
            compiled,
            arena,
            offsets,
            scratch_offset,
            scratch_stride,
            parts,
            pool,
            helper_parts: Arc::clone(&executor.helper_parts),
            times,
            table,
            report: Box::default(),
        })
    }

    /// Runs on the arguments, each checked against its buffer's length.
    fn run(&mut self, args: &[&[f32]]) {
        assert_eq!(
            args.len(),
            self.program.params.len(),
            "the compiled `{}` takes {} arguments",
            self.program.name,
            self.program.params.len()
        );
        let base = self.arena.as_mut_ptr();
        for (b, offset) in self.offsets.iter().enumerate() {
            if let Some(at) = offset {
                // SAFETY: `plan` placed every buffer inside the arena.
                self.table[b] = unsafe { base.add(*at) };
            }
        }
        for (i, (&buffer, arg)) in self.program.params.iter().zip(args).enumerate() {
            let want = self.program.buffer(buffer).len;
            assert_eq!(arg.len(), want, "argument {i} of `{}` has {} values, not {want}", self.program.name, arg.len());
            // Arguments are only read: the verifier rejects kernels that write them.
            self.table[buffer.0] = arg.as_ptr().cast_mut();
        }
        let report: *const BoundsReport = &*self.report;
        self.table[self.program.buffers.len()] = report.cast_mut().cast();
        let launch = Launch {
            kernels: &self.compiled.kernels,
            parts: &self.parts,
            table: self.table.as_ptr(),
            // SAFETY: the scratch areas are the arena's tail.
            scratch: unsafe { base.add(self.scratch_offset) },
            scratch_stride: self.scratch_stride,
            helper_parts: &self.helper_parts,
        };
        // SAFETY: every address points at a buffer of the length the program was verified
        // against; outputs are arena buffers, distinct from the arguments; parts of a kernel
        // write disjoint elements and each has its own scratch area.
        let times = self.times.as_mut().map(|(times, runs)| {
            *runs += 1;
            times.as_mut_slice()
        });
        unsafe { launch.run(self.pool.as_deref(), times) };
        if let Some(((kernel, buffer, index), count)) = self.report.first() {
            let name = self.program.buffers.get(buffer as usize).map_or("the scratch area", |b| b.name.as_str());
            panic!(
                "compiled `{}`: kernel k{kernel} accessed element {index} of `{name}`, outside it ({count} accesses in all)",
                self.program.name
            );
        }
    }

    /// Result `k` of the last run.
    fn result(&self, k: usize) -> &[f32] {
        let buffer = self.program.results[k];
        let at = self.offsets[buffer.0].expect("results live in the arena");
        &self.arena[at..at + self.program.buffer(buffer).len]
    }
}

/// Into how many parts a kernel is split on `threads` threads.
fn parts(kernel: &CompiledKernel, threads: usize, parallel_flops: u64) -> usize {
    if kernel.flops < parallel_flops { 1 } else { threads.min(kernel.units).max(1) }
}

/// What one run of the kernels needs, shared with the threads that run parts of them.
struct Launch<'r> {
    kernels: &'r [CompiledKernel],
    parts: &'r [usize],
    table: *const *mut f32,
    scratch: *mut f32,
    scratch_stride: usize,
    helper_parts: &'r AtomicU64,
}

// SAFETY: the kernels only touch the buffers behind `table`, and parts of a kernel that run
// at once write disjoint elements and separate scratch areas.
unsafe impl Sync for Launch<'_> {}

impl Launch<'_> {
    /// Runs every kernel in order, splitting those with several parts over `crew`.
    ///
    /// # Safety
    /// As `Compiled::kernels` requires: the table points at live buffers of the right lengths.
    unsafe fn run(&self, crew: Option<&Crew>, mut times: Option<&mut [Duration]>) {
        for (index, (kernel, &parts)) in self.kernels.iter().zip(self.parts).enumerate() {
            let started = times.is_some().then(Instant::now);
            if let Some(crew) = crew
                && parts > 1
            {
                crew.run(parts, &|part| unsafe { self.run_part(kernel, part, parts) });
            } else {
                unsafe { (kernel.entry)(self.table, 0, kernel.units as i64, self.scratch) };
            }
            if let (Some(times), Some(started)) = (times.as_deref_mut(), started) {
                times[index] += started.elapsed();
            }
        }
    }

    /// Part `part` of `parts` of a kernel: an even share of its units, with scratch area `part`.
    unsafe fn run_part(&self, kernel: &CompiledKernel, part: usize, parts: usize) {
        let begin = kernel.units * part / parts;
        let end = kernel.units * (part + 1) / parts;
        // SAFETY: the arena holds one scratch area per part.
        let scratch = unsafe { self.scratch.add(part * self.scratch_stride) };
        unsafe { (kernel.entry)(self.table, begin as i64, end as i64, scratch) };
        if part > 0 {
            // The crew runs every part but the first on a helper thread.
            self.helper_parts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Arena offsets for every buffer that is not an argument: each temporary lives from the
/// kernel that writes it first to the kernel that reads it last, and buffers whose lives
/// do not overlap may share memory. Results and constants live throughout. Offsets are
/// multiples of 16 floats.
fn plan(program: &Program) -> (Vec<Option<usize>>, usize) {
    let count = program.buffers.len();
    let end = program.kernels.len();
    let mut first = vec![usize::MAX; count];
    let mut last = vec![0usize; count];
    for (k, kernel) in program.kernels.iter().enumerate() {
        let (reads, writes) = kernel.buffers();
        for b in reads.into_iter().chain(writes) {
            first[b.0] = first[b.0].min(k);
            last[b.0] = last[b.0].max(k);
        }
    }
    let mut placed: Vec<(usize, usize, usize, usize)> = Vec::new(); // (offset, len, first, last)
    let mut offsets = vec![None; count];
    let mut total = 0;
    let mut order: Vec<usize> = (0..count).filter(|&b| !matches!(program.buffers[b].role, Role::Param(_))).collect();
    order.sort_by_key(|&b| std::cmp::Reverse(program.buffers[b].len));
    for b in order {
        let buffer = &program.buffers[b];
        let (from, to) = match buffer.role {
            Role::Temp if first[b] != usize::MAX => (first[b], last[b]),
            _ => (0, end),
        };
        let len = buffer.len.next_multiple_of(16).max(16);
        // The lowest offset that overlaps no buffer alive at the same time.
        let mut conflicts: Vec<(usize, usize)> =
            placed.iter().filter(|&&(_, _, f, l)| f <= to && from <= l).map(|&(o, n, _, _)| (o, o + n)).collect();
        conflicts.sort_unstable();
        let mut offset = 0;
        for (start, stop) in conflicts {
            if offset + len <= start {
                break;
            }
            offset = offset.max(stop);
        }
        placed.push((offset, len, from, to));
        offsets[b] = Some(offset);
        total = total.max(offset + len);
    }
    (offsets, total)
}

struct JitStep {
    runner: Runner,
    arguments: StepArguments,
    optimizer: Optimizer,
    /// The step's function, interpreted to find where a value stopped being finite.
    function: Function,
}

impl Runner {
    fn profile(&self) -> Option<Profile> {
        let (times, runs) = self.times.as_ref()?;
        let parts = self
            .program
            .kernels
            .iter()
            .zip(times)
            .map(|(kernel, &time)| PartTime { what: self.program.kernel_text(kernel), flops: kernel.flops(), time })
            .collect();
        Some(Profile { steps: *runs, parts })
    }
}

impl TrainStep for JitStep {
    fn profile(&self) -> Option<Profile> {
        self.runner.profile()
    }

    fn step(&mut self, batch: &Batch<'_>, params: &mut [Vec<f32>], state: &mut State) -> Result<f32, StepError> {
        {
            let mut args: [&[f32]; 64] = [&[]; 64];
            let count = self.arguments.len();
            if count > args.len() {
                return Err(StepError {
                    message: format!("a step with {count} arguments is too large for the compiled executor"),
                    origin: None,
                });
            }
            for (k, arg) in args.iter_mut().enumerate().take(count) {
                *arg = self.arguments.get(k, batch, params);
            }
            self.runner.run(&args[..count]);
        }
        let results = self.runner.program.results.len();
        let loss = self.runner.result(0)[0];
        let finite = (0..results).all(|k| all_finite(self.runner.result(k)));
        if !finite {
            // Compiled code only sees that a result is not finite; the interpreter finds where.
            let origin = locate_not_finite(&self.function, &self.arguments, batch, params);
            return Err(not_finite(f64::from(loss), origin));
        }
        self.optimizer.begin(state);
        for (k, param) in params.iter_mut().enumerate().take(results - 1) {
            let buffer = self.runner.program.results[k + 1];
            let at = self.runner.offsets[buffer.0].expect("in the arena");
            let len = self.runner.program.buffer(buffer).len;
            self.optimizer.update(state, k, param, &self.runner.arena[at..at + len]);
        }
        Ok(loss)
    }
}

/// Whether every value is finite, looking at all of them (no early exit) so that the
/// loop vectorises, to the widest vectors the CPU has.
fn all_finite(values: &[f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { all_finite_avx512(values) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { all_finite_avx2(values) };
        }
    }
    all_finite_lanes(values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn all_finite_avx512(values: &[f32]) -> bool {
    all_finite_lanes(values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn all_finite_avx2(values: &[f32]) -> bool {
    all_finite_lanes(values)
}

/// The exponent bits are all ones only for infinities and NaNs.
#[inline(always)]
fn all_finite_lanes(values: &[f32]) -> bool {
    values.iter().fold(0u32, |bad, v| bad | u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000)) == 0
}

struct JitProgram {
    runner: Runner,
}

impl RunProgram for JitProgram {
    fn run(&mut self, args: &[&[f32]], results: &mut [&mut [f32]]) {
        self.runner.run(args);
        for (k, out) in results.iter_mut().enumerate() {
            out.copy_from_slice(self.runner.result(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_finite_finds_every_kind_of_non_finite_value() {
        assert!(all_finite(&[0.0, -0.0, 1.0, f32::MAX, f32::MIN, f32::MIN_POSITIVE / 2.0]));
        for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN] {
            assert!(!all_finite(&[1.0, 2.0, bad, 3.0]), "{bad}");
        }
        assert!(all_finite(&[]));
    }
}
