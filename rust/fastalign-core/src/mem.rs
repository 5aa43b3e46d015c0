//! Large zeroed buffers on transparent huge pages, where Linux offers them.
//!
//! The pages of a fresh buffer are faulted in one at a time when first touched: 4 KiB each,
//! and each fault is slow on a virtual machine (touching a fresh 8 MB vector took as long as a
//! whole pass of the Bradley-Terry fit). An anonymous mapping advised `MADV_HUGEPAGE` is
//! faulted in 2 MiB at a time instead, about a tenth of the time (see
//! `benches/results/rank_cpu_2core.md`). Elsewhere, or when the mapping fails, a plain vector.

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
    use super::Zeroed;

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
