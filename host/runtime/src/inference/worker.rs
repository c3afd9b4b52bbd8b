//! The inference worker process: `prelabel __inference-worker MEMORY_BYTES ENGINE THREADS
//! [LIBRARY]`. It caps its own heap, loads its engine, confines itself (`confine.rs`), then
//! reads requests on stdin and answers on stdout until stdin closes.

use std::process::ExitCode;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::{FramedRead, FramedWrite};

use super::backend::Backend;
use super::engine::{self, EngineKind};
use super::{Answer, GraphId, Request, Response, WORKER_ARG, WORKER_HEADROOM};

/// The worker's arguments, as the host passes them (after [`WORKER_ARG`]).
struct Args {
    memory_bytes: usize,
    engine: EngineKind,
    threads: usize,
    library: Option<String>,
}

fn parse(args: &[String]) -> Option<Args> {
    let [memory, engine, threads, rest @ ..] = args else {
        return None;
    };
    Some(Args {
        memory_bytes: memory.parse().ok()?,
        engine: engine.parse().ok()?,
        threads: threads.parse().ok().filter(|&n| n >= 1)?,
        library: rest.first().cloned(),
    })
}

/// The worker's entry point; `args` are the process's arguments after [`WORKER_ARG`].
pub fn worker_main(args: &[String]) -> ExitCode {
    // `probe LIBRARY`: the host asks, once, whether ONNX Runtime loads from there and which
    // version it is, without loading a C++ library into itself.
    if let [probe, library] = args
        && probe == "probe"
    {
        return match engine::probe_library(library) {
            Ok(version) => {
                println!("{version}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        };
    }
    // `confinement FILE ADDRESS ...`: a worker set up as any other tries what confinement
    // forbids and says what happened (the tests' proof that it holds).
    if let [check, file, address, rest @ ..] = args
        && check == "confinement"
    {
        return match parse(rest).ok_or_else(usage).and_then(|args| start(&args)) {
            Ok(_) => {
                try_what_is_forbidden(file, address);
                ExitCode::SUCCESS
            }
            Err(e) => e.exit(),
        };
    }
    let Some(args) = parse(args) else {
        return usage().exit();
    };
    let (mut backend, executor) = match start(&args) {
        Ok(started) => started,
        Err(e) => return e.exit(),
    };
    let served = executor.block_on(async {
        let mut requests = FramedRead::new(tokio::io::stdin(), super::codec(usize::MAX));
        let mut replies = FramedWrite::new(tokio::io::stdout(), super::codec(usize::MAX));
        while let Some(frame) = requests.next().await {
            let frame = frame?;
            let response = match postcard::from_bytes::<Request>(&frame) {
                // The model's bytes are the next frame, taken as they are.
                Ok(Request::Load { graph, size }) => match requests.next().await {
                    Some(model) => {
                        let model = model?.freeze();
                        if model.len() as u64 == size {
                            serve(backend.as_mut(), args.engine, Job::Load(graph, model))
                        } else {
                            Err(format!(
                                "announced {size} bytes of model, got {}",
                                model.len()
                            ))
                        }
                    }
                    None => break,
                },
                Ok(request) => serve(backend.as_mut(), args.engine, Job::Request(request)),
                Err(e) => Err(format!("unreadable request: {e}")),
            };
            let reply = postcard::to_allocvec(&response)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            replies.send(Bytes::from(reply)).await?;
        }
        std::io::Result::Ok(())
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inference worker: {e}");
            ExitCode::from(1)
        }
    }
}

/// Why a worker did not start: what it says on stderr, and its exit code.
struct NotStarted(String, u8);

impl NotStarted {
    fn exit(self) -> ExitCode {
        eprintln!("{}", self.0);
        ExitCode::from(self.1)
    }
}

fn usage() -> NotStarted {
    NotStarted(
        format!("usage: prelabel {WORKER_ARG} MEMORY_BYTES tract|onnxruntime THREADS [LIBRARY]"),
        2,
    )
}

/// Everything before the first request: the heap cap, the engine, the executor, then the
/// confinement. From then on the worker reads and runs what a guest gave it.
fn start(args: &Args) -> Result<(Box<dyn Backend>, tokio::runtime::Runtime), NotStarted> {
    // A host killed mid-call (kill -9) must not leave its worker computing for hours.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG reads one integer argument.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    keep_freed_memory();
    limit_heap(args.memory_bytes.saturating_add(WORKER_HEADROOM))
        .map_err(|e| NotStarted(format!("cannot cap the worker's memory: {e}"), 1))?;
    // A panic in an engine is that request's error, not a message on stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let backend: Box<dyn Backend> = match args.engine {
        EngineKind::Tract => Box::new(super::tract::Graphs::new(args.memory_bytes, args.threads)),
        EngineKind::OnnxRuntime => {
            let library = args.library.as_deref().ok_or_else(|| {
                NotStarted("the ONNX Runtime engine needs its library's path".into(), 2)
            })?;
            Box::new(
                super::onnxruntime::Sessions::new(library, args.memory_bytes, args.threads)
                    .map_err(|e| NotStarted(e, 1))?,
            )
        }
    };
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NotStarted(format!("cannot start the worker's executor: {e}"), 1))?;
    super::confine::confine()
        .map_err(|e| NotStarted(format!("cannot confine the inference worker: {e}"), 1))?;
    Ok((backend, executor))
}

/// What a model that subverted its engine would try, each tried for real, one line each:
/// `open: ...`, `connect: ...`, `run: ...`, `ptrace: ...`.
fn try_what_is_forbidden(file: &str, address: &str) {
    let said = |what: &str, result: std::io::Result<String>| match result {
        Ok(done) => println!("{what}: done: {done}"),
        Err(e) => println!("{what}: refused: {e}"),
    };
    said(
        "open",
        std::fs::read(file).map(|bytes| format!("{} bytes", bytes.len())),
    );
    said(
        "connect",
        std::net::TcpStream::connect(address).map(|s| format!("{:?}", s.peer_addr())),
    );
    said(
        "run",
        std::process::Command::new("/bin/sh")
            .args(["-c", "true"])
            .status()
            .map(|status| status.to_string()),
    );
    // SAFETY: PTRACE_ATTACH to the parent reads no memory of ours.
    let traced = unsafe {
        libc::ptrace(
            libc::PTRACE_ATTACH,
            libc::getppid(),
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    said(
        "ptrace",
        if traced == 0 {
            Ok("attached".into())
        } else {
            Err(std::io::Error::last_os_error())
        },
    );
}

/// What the worker does for one request: a load carries the model's bytes.
enum Job {
    Load(GraphId, Bytes),
    Request(Request),
}

/// One request: a panic is its error, an allocation that failed at the worker's limit is the
/// memory limit.
fn serve(backend: &mut dyn Backend, engine: EngineKind, job: Job) -> Response {
    let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match job {
        Job::Load(graph, model) => backend.load(graph, model).map(Answer::Loaded),
        Job::Request(Request::Load { .. }) => Err("a model's bytes are missing".into()),
        Job::Request(Request::Run { graph, inputs }) => {
            let started = std::time::Instant::now();
            backend.run(graph, inputs).map(|outputs| Answer::Outputs {
                outputs,
                engine_us: started.elapsed().as_micros() as u64,
            })
        }
        Job::Request(Request::Forget { graphs }) => {
            for graph in graphs {
                backend.forget(graph);
            }
            Ok(Answer::Forgotten)
        }
    }))
    .unwrap_or_else(|panic| {
        let message = crate::panic_message(&*panic);
        Err(format!("{engine} panicked: {message}"))
    });
    // tract's AVX kernels leave the upper state dirty (measured with `vector_state::dirty`
    // after every run on an Intel Xeon); the worker's own code (the reply, the next request)
    // is SSE.
    crate::vector_state::clear();
    match response {
        Err(e) if over_memory(&e) => Ok(Answer::OverMemory),
        response => response,
    }
}

/// An engine's words for an allocation refused at the worker's limit: tract asks fallibly,
/// then panics; ONNX Runtime's arena says so, and its C++ `new` throws `std::bad_alloc`,
/// which its API returns as an error.
fn over_memory(message: &str) -> bool {
    [
        "failed to allocate",
        "Failed to allocate memory",
        "bad_alloc",
        "bad allocation",
    ]
    .iter()
    .any(|marker| message.contains(marker))
}

/// Large buffers (a model's bytes and its copies, a tensor a call) from the heap, and freed
/// memory kept there for the next one. glibc's defaults map each large block afresh and give
/// it back on free, so every copy of a 10 MB model and every call's tensors page-faulted new
/// memory: a fifth of loading res10 into ONNX Runtime went to the kernel. The cap is the
/// same either way (`RLIMIT_DATA` counts the heap as it counts private mappings).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets malloc's tunables; called before any other thread exists.
    unsafe {
        // 32 MiB is the most glibc takes here; larger blocks are still mapped.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Caps the process's heap (brk and private anonymous mappings, since Linux 4.7): an
/// allocation past it fails, and the Rust runtime aborts the worker with
/// `memory allocation of N bytes failed`, which the host reports as the memory limit.
fn limit_heap(bytes: usize) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
