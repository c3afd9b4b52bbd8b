//! A short, deterministic fuzz run in every test run: mutations of real inputs (manifests,
//! filters, images) fed to the same entry points as the cargo-fuzz targets in `tests/fuzz`.
//! Longer runs: `cargo +nightly fuzz run --fuzz-dir tests/fuzz manifest|filter|image`.

/// xorshift64*: a fixed sequence, so a failure here reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flips, inserts, deletes, truncates and splices bytes.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(data.len() + 1);
        let last = at.min(data.len().saturating_sub(1));
        match rng.below(6) {
            0 if !data.is_empty() => data[last] ^= 1 << rng.below(8),
            1 => data.insert(at, rng.next() as u8),
            2 if at < data.len() => {
                data.remove(at);
            }
            3 => data.truncate(at),
            4 => data
                .splice(at..at, other[..rng.below(other.len() + 1)].iter().copied())
                .for_each(drop),
            _ if !data.is_empty() => {
                data[last] = [b'=', b'"', b'[', b'\n', b'*', 0xff][rng.below(6)]
            }
            _ => {}
        }
    }
    data
}

fn run(seeds: &[Vec<u8>], iterations: usize, target: fn(&[u8])) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for seed in seeds {
        target(seed);
    }
    for _ in 0..iterations {
        let seed = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        target(&mutate(&mut rng, seed, other));
    }
}

fn fixture_files(dir: &str) -> Vec<Vec<u8>> {
    let dir = crate::support::fixtures().join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect()
}

#[test]
fn manifests() {
    let mut seeds = fixture_files("manifests");
    seeds.extend(fixture_files("manifests/bad"));
    run(&seeds, 20_000, prelabel_dev::fuzzing::manifest);
}

#[test]
fn filters() {
    let seeds: Vec<Vec<u8>> = [
        "metadata.system.mimetype=image/*",
        "name!=*.tmp",
        "metadata.system.mimetype in image/png,image/jpeg",
        "a.b=[a-z]?x",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run(&seeds, 50_000, prelabel_dev::fuzzing::filter);
}

#[test]
fn images() {
    // Small images keep each iteration cheap; the hostile corpus brings the odd formats.
    let mut seeds = Vec::new();
    for (w, h) in [(16, 12), (1, 1), (40, 3)] {
        for format in [
            image::ImageFormat::Png,
            image::ImageFormat::Jpeg,
            image::ImageFormat::Gif,
            image::ImageFormat::Bmp,
            image::ImageFormat::WebP,
        ] {
            let mut out = std::io::Cursor::new(Vec::new());
            image::DynamicImage::new_rgb8(w, h)
                .write_to(&mut out, format)
                .expect("encode");
            seeds.push(out.into_inner());
        }
    }
    seeds.extend(
        fixture_files("hostile_inputs")
            .into_iter()
            .filter(|b| b.len() < 1000),
    );
    run(&seeds, 20_000, prelabel_dev::fuzzing::image);
}
