//! The x86 AVX upper state, around native code. Native code that uses 256- or 512-bit
//! registers (tract's kernels) may return with the upper halves of the vector registers
//! "dirty"; code compiled for SSE (Cranelift's code for wasm SIMD, and Rust built for the
//! baseline x86-64) then pays a transition penalty or a false dependency on many Intel cores
//! until something clears the state. A review on an Intel Xeon with AVX-512 saw a guest's
//! stages run ten times slower after in-process native inference. Measured here with
//! [`dirty`]: the inference worker (a process of its own) is dirty after every tract run and
//! clears it; the host's wasm thread is clean when the inference import returns, so the guest
//! is not exposed. [`clear`] is `vzeroupper`; [`dirty`] reads the processor's own record
//! (XINUSE) for tests and diagnosis; [`cpu`] names the CPU for the bench.

/// Clears the upper halves of the vector registers (`vzeroupper`) where the CPU has AVX;
/// nothing elsewhere. Cheap: a few cycles.
#[inline]
pub fn clear() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked above); vzeroupper only zeroes the upper halves,
        // which no Rust code between calls relies on (the ABI does not preserve them).
        unsafe { zero_upper() }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn zero_upper() {
    std::arch::x86_64::_mm256_zeroupper();
}

/// Whether the AVX upper state is in use (dirty), from `XGETBV(ECX=1)` (XINUSE bit 2);
/// `None` where the CPU cannot say (no AVX, no XGETBV with ECX=1, not x86-64).
pub fn dirty() -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        if !std::arch::is_x86_feature_detected!("avx")
            || !std::arch::is_x86_feature_detected!("xsave")
        {
            return None;
        }
        // CPUID.(EAX=0DH, ECX=1):EAX bit 2: XGETBV with ECX = 1 is supported.
        let leaf = std::arch::x86_64::__cpuid_count(0xD, 1);
        if leaf.eax & (1 << 2) == 0 {
            return None;
        }
        let (low, _high): (u32, u32);
        // SAFETY: XGETBV with ECX=1 is supported (checked above); it only reads.
        unsafe {
            std::arch::asm!("xgetbv", in("ecx") 1u32, out("eax") low, out("edx") _high,
                options(nomem, nostack, preserves_flags));
        }
        Some(low & (1 << 2) != 0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// What the bench prints so that tables from different machines are never compared blindly:
/// the CPU's model and the vector features this process uses.
pub fn cpu() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, m)| m.trim().to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    #[cfg(target_arch = "x86_64")]
    let features: Vec<&str> = [
        ("sse4.1", std::arch::is_x86_feature_detected!("sse4.1")),
        ("avx", std::arch::is_x86_feature_detected!("avx")),
        ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ("fma", std::arch::is_x86_feature_detected!("fma")),
        ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
    ]
    .into_iter()
    .filter_map(|(name, has)| has.then_some(name))
    .collect();
    #[cfg(not(target_arch = "x86_64"))]
    let features: Vec<&str> = Vec::new();
    format!("{model} ({})", features.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 256-bit work, as native kernels leave it: all ones in ymm0. Written as assembly in
    /// a function compiled without AVX, so the compiler adds no `vzeroupper` of its own.
    #[cfg(target_arch = "x86_64")]
    fn dirty_it() {
        // SAFETY: only called where `dirty()` answered, so the CPU has AVX; ymm0 is declared
        // clobbered (as xmm0, its lower half).
        unsafe {
            std::arch::asm!("vcmpps ymm0, ymm0, ymm0, 15", out("xmm0") _,
                options(nomem, nostack, preserves_flags));
        }
    }

    #[test]
    fn clear_leaves_the_upper_state_clean() {
        let Some(_) = dirty() else {
            eprintln!("this CPU cannot report its upper state: nothing to check");
            return;
        };
        #[cfg(target_arch = "x86_64")]
        {
            dirty_it();
            assert_eq!(dirty(), Some(true), "256-bit work dirties the upper state");
            clear();
            assert_eq!(dirty(), Some(false));
        }
    }
}
