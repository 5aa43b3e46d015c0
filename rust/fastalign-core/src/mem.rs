//! Memory: allocations whose size comes from the caller, made fallibly, and large zeroed
//! buffers on transparent huge pages.
//!
//! A size that comes from an argument (the pairs a pair enumeration produces, a bootstrap's
//! rounds x items matrix, the per-item vectors of a fit over `n_items` items) can be far beyond
//! the machine; Rust's infallible allocation would then abort the whole interpreter ("memory
//! allocation of N bytes failed"). [`vec_with_capacity`] and [`vec_filled`] reserve with
//! `try_reserve_exact` instead, and [`check_room`] asks for a whole working set in one piece
//! before a routine allocates it piecewise; each returns [`Error::Memory`] naming the argument
//! and the size. (On Linux a request beyond RAM + swap, or beyond `ulimit -v`, fails at once;
//! one that fits is granted and its pages are found only when touched, so a working set close
//! to the free memory can still meet the OOM killer. No check can see that in advance.)
//!
//! [`Zeroed`]: the pages of a fresh buffer are faulted in one at a time when first touched:
//! 4 KiB each, and each fault is slow on a virtual machine (touching a fresh 8 MB vector took
//! as long as a whole pass of the Bradley-Terry fit). An anonymous mapping advised
//! `MADV_HUGEPAGE` is faulted in 2 MiB at a time instead, about a tenth of the time (see
//! `benches/results/rank_cpu_2core.md`). Elsewhere, or when the mapping fails, a plain vector.

use crate::{Error, Result};

/// The bytes of `len` values of `T`.
pub fn bytes_of<T>(len: u128) -> u128 {
    len.saturating_mul(std::mem::size_of::<T>() as u128)
}

/// An empty vector with room for exactly `len` values, or [`Error::Memory`] with `what()`
/// (the argument and what it asks for, e.g. "all_pairs=True would produce 9 pairs").
pub fn vec_with_capacity<T>(len: usize, what: impl FnOnce() -> String) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::Memory {
        what: what(),
        bytes: bytes_of::<T>(len as u128),
    })?;
    Ok(v)
}

/// `len` copies of `value` (a fallible `vec![value; len]`), or [`Error::Memory`] with `what()`.
pub fn vec_filled<T: Clone>(len: usize, value: T, what: impl FnOnce() -> String) -> Result<Vec<T>> {
    let mut v = vec_with_capacity(len, what)?;
    v.resize(len, value);
    Ok(v)
}

/// Working sets below this are not worth a check.
const ROOM_MIN: u128 = 64 << 20;

/// Checks that `bytes` more can be allocated now, for a working set a routine will allocate in
/// pieces: asks for them in one piece and gives them back untouched (no page is used), or
/// returns [`Error::Memory`] with `what()`.
pub fn check_room(bytes: u128, what: impl FnOnce() -> String) -> Result<()> {
    if bytes < ROOM_MIN {
        return Ok(());
    }
    let fail = |what: String| Error::Memory { what, bytes };
    let Ok(len) = usize::try_from(bytes) else {
        return Err(fail(what()));
    };
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(len).map_err(|_| fail(what()))?;
    // without this the optimizer may drop the unused allocation and report success (a
    // release build passed 2^62 bytes)
    std::hint::black_box(probe.as_mut_ptr());
    Ok(())
}

use bytemuck::Pod;

/// A huge page (x86-64 and most aarch64 Linux kernels).
const HUGE: usize = 2 << 20;

/// A zeroed slice of `T` of a fixed length.
pub struct Zeroed<T> {
    inner: Inner<T>,
    len: usize,
}

enum Inner<T> {
    Vec(Vec<T>),
    #[cfg(target_os = "linux")]
    Map {
        map: memmap2::MmapMut,
        offset: usize,
    },
}

impl<T: Pod> Zeroed<T> {
    /// `len` zeros; on huge pages when they are at least 4 MiB.
    pub fn new(len: usize) -> Self {
        #[cfg(target_os = "linux")]
        {
            let bytes = len.saturating_mul(std::mem::size_of::<T>());
            if (2 * HUGE..usize::MAX / 2).contains(&bytes) {
                if let Ok(map) = memmap2::MmapMut::map_anon(bytes + HUGE) {
                    // the first huge-page boundary of the mapping (pages are aligned for any T)
                    let addr = map.as_ptr() as usize;
                    let offset = addr.next_multiple_of(HUGE) - addr;
                    let room = (bytes + HUGE - offset) / HUGE * HUGE;
                    // advice only: without transparent huge pages the mapping still works
                    let _ = map.advise_range(memmap2::Advice::HugePage, offset, room);
                    return Zeroed {
                        inner: Inner::Map { map, offset },
                        len,
                    };
                }
            }
        }
        Zeroed {
            inner: Inner::Vec(vec![T::zeroed(); len]),
            len,
        }
    }
}

impl<T: Pod> std::ops::Deref for Zeroed<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.inner {
            Inner::Vec(v) => v,
            #[cfg(target_os = "linux")]
            Inner::Map { map, offset } => {
                bytemuck::cast_slice(&map[*offset..*offset + self.len * std::mem::size_of::<T>()])
            }
        }
    }
}

impl<T: Pod> std::ops::DerefMut for Zeroed<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let len = self.len;
        match &mut self.inner {
            Inner::Vec(v) => v,
            #[cfg(target_os = "linux")]
            Inner::Map { map, offset } => bytemuck::cast_slice_mut(
                &mut map[*offset..*offset + len * std::mem::size_of::<T>()],
            ),
        }
    }
}

impl<T> std::fmt::Debug for Zeroed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zeroed").field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        let what = || "n=huge would need it all".to_owned();
        let err = vec_with_capacity::<u64>(usize::MAX / 4, what).expect_err("too large");
        assert_eq!(
            err,
            Error::Memory {
                what: "n=huge would need it all".into(),
                bytes: (usize::MAX / 4) as u128 * 8
            }
        );
        assert!(err.to_string().starts_with("n=huge would need it all ("));
        assert!(vec_filled(isize::MAX as usize, 0u8, what).is_err());
        assert!(check_room(u128::MAX, what).is_err());
        assert!(check_room(1 << 62, what).is_err()); // 4.6 EB: beyond any machine
        check_room(1 << 20, what).expect("small working sets pass unchecked");
        check_room(256 << 20, what).expect("256 MB can be had");
        assert_eq!(vec_filled(3, 7i64, what).expect("small"), [7, 7, 7]);
        assert!(
            vec_with_capacity::<f64>(10, what)
                .expect("small")
                .capacity()
                >= 10
        );
    }

    #[test]
    fn small_and_large_buffers_are_zeroed_and_writable() {
        for len in [0usize, 1, 1000, 3 << 20] {
            let mut z = Zeroed::<f64>::new(len);
            assert_eq!(z.len(), len);
            assert!(z.iter().all(|&x| x == 0.0));
            if let Some(last) = z.last_mut() {
                *last = 2.5;
            }
            assert_eq!(z.iter().sum::<f64>(), if len > 0 { 2.5 } else { 0.0 });
        }
    }
}
#[cfg(test)]
mod timing {
    #[test]
    #[ignore]
    fn touch_time() {
        for _ in 0..5 {
            let t0 = std::time::Instant::now();
            let mut z = super::Zeroed::<f64>::new(1 << 20);
            for i in (0..z.len()).step_by(512) {
                z[i] = 1.0;
            }
            let t1 = std::time::Instant::now();
            let mut v = vec![0.0f64; 1 << 20];
            for i in (0..v.len()).step_by(512) {
                v[i] = 1.0;
            }
            let t2 = std::time::Instant::now();
            println!(
                "zeroed {:?} vec {:?} {}",
                t1 - t0,
                t2 - t1,
                z[512] + v[1024]
            );
        }
    }
}
