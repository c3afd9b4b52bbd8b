//! The inference worker process: `prelabel __inference-worker MEMORY_BYTES ENGINE THREADS
//! [LIBRARY]`. It caps its own heap, loads its engine, confines itself (`confine.rs`), then
//! reads requests on stdin and answers on stdout until stdin closes.

use std::process::ExitCode;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::{FramedRead, FramedWrite};

use super::engine::{self, EngineKind};
use super::{Answer, GraphId, Request, Response, Signature, Tensor, WORKER_ARG, WORKER_HEADROOM};

/// What an engine does in the worker. Errors are the model's, for the guest.
pub trait Backend {
    /// Reads a model (its bytes; the worker opens no file) and keeps it as `graph`.
    fn load(&mut self, graph: GraphId, bytes: &[u8]) -> Result<Signature, String>;
    /// Runs `graph` on `inputs`, given in the model's input order.
    fn run(&mut self, graph: GraphId, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, String>;
    /// Lets go of `graph` and whatever was made for it.
    fn forget(&mut self, graph: GraphId);
}

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
    let Some(args) = parse(args) else {
        eprintln!("usage: prelabel {WORKER_ARG} MEMORY_BYTES tract|onnxruntime THREADS [LIBRARY]");
        return ExitCode::from(2);
    };
    // A host killed mid-call (kill -9) must not leave its worker computing for hours.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG reads one integer argument.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    if let Err(e) = limit_heap(args.memory_bytes.saturating_add(WORKER_HEADROOM)) {
        eprintln!("cannot cap the worker's memory: {e}");
        return ExitCode::from(1);
    }
    // A panic in an engine is that request's error, not a message on stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let mut backend: Box<dyn Backend> = match args.engine {
        EngineKind::Tract => Box::new(super::tract::Graphs::new(args.memory_bytes, args.threads)),
        EngineKind::OnnxRuntime => {
            let Some(library) = &args.library else {
                eprintln!("the ONNX Runtime engine needs its library's path");
                return ExitCode::from(2);
            };
            match super::onnxruntime::Sessions::new(library, args.memory_bytes, args.threads) {
                Ok(sessions) => Box::new(sessions),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(1);
                }
            }
        }
    };
    let executor = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(executor) => executor,
        Err(e) => {
            eprintln!("cannot start the worker's executor: {e}");
            return ExitCode::from(1);
        }
    };
    // From here on, the worker reads and runs what a guest gave it: it opens no file, makes
    // no socket, runs no program.
    if let Err(e) = super::confine::confine() {
        eprintln!("cannot confine the inference worker: {e}");
        return ExitCode::from(1);
    }
    let served = executor.block_on(async {
        let mut requests = FramedRead::new(tokio::io::stdin(), super::codec(usize::MAX));
        let mut replies = FramedWrite::new(tokio::io::stdout(), super::codec(usize::MAX));
        while let Some(frame) = requests.next().await {
            let frame = frame?;
            let response = match postcard::from_bytes::<Request>(&frame) {
                Ok(request) => serve(backend.as_mut(), args.engine, request),
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

/// One request: a panic is its error, an allocation that failed at the worker's limit is the
/// memory limit.
fn serve(backend: &mut dyn Backend, engine: EngineKind, request: Request) -> Response {
    let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match request {
        Request::Load { graph, model } => backend.load(graph, &model).map(Answer::Loaded),
        Request::Run { graph, inputs } => backend.run(graph, inputs).map(Answer::Outputs),
        Request::Forget { graphs } => {
            for graph in graphs {
                backend.forget(graph);
            }
            Ok(Answer::Forgotten)
        }
    }))
    .unwrap_or_else(|panic| {
        let message = crate::error::panic_message(&*panic);
        Err(format!("{engine} panicked: {message}"))
    });
    // tract's AVX kernels leave the upper state dirty (measured with `vector_state::dirty`
    // after every run on an Intel Xeon); the worker's own code (the reply, the next request)
    // is SSE.
    crate::runtime::vector_state::clear();
    match response {
        Err(e) if over_memory(&e) => Ok(Answer::OverMemory),
        response => response,
    }
}

/// An engine's words for an allocation refused at the worker's limit: tract asks fallibly,
/// then panics; ONNX Runtime's C++ `new` throws `std::bad_alloc`, which its API returns as
/// an error.
fn over_memory(message: &str) -> bool {
    ["failed to allocate", "bad_alloc", "bad allocation"]
        .iter()
        .any(|marker| message.contains(marker))
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
