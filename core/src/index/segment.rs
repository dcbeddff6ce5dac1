//! A segment of a namespace's tail: rows appended together, kept as f32 values and as int8
//! codes with a per-row scale.

use crate::vector::kernels::code_sum;
use crate::vector::quantize;

/// Rows appended together: f32 values, int8 codes, their sums (which the shared scan takes,
/// see [`kernels::scan_i8_multi`]) and scales, slots, memory ids, agent keys, and generations
/// (see [`NamespaceVectors::current`]).
///
/// [`kernels::scan_i8_multi`]: crate::vector::kernels::scan_i8_multi
#[derive(Debug, Default)]
pub(super) struct Segment {
    pub(super) slots: Vec<u32>,
    pub(super) gens: Vec<u64>,
    pub(super) ids: Vec<[u8; 16]>,
    pub(super) data: Vec<f32>,
    pub(super) codes: Vec<i8>,
    pub(super) sums: Vec<i32>,
    pub(super) scales: Vec<f32>,
    pub(super) agents: Vec<u64>,
}

impl Segment {
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn push(&mut self, slot: u32, gen: u64, id: [u8; 16], v: &[f32], agent: u64) {
        self.slots.push(slot);
        self.gens.push(gen);
        self.ids.push(id);
        self.agents.push(agent);
        self.data.extend_from_slice(v);
        let from = self.codes.len();
        let scale = quantize(v, &mut self.codes);
        self.sums.push(code_sum(&self.codes[from..]));
        self.scales.push(scale);
    }

    pub(super) fn push_from(&mut self, other: &Segment, i: usize, dims: usize) {
        self.slots.push(other.slots[i]);
        self.gens.push(other.gens[i]);
        self.ids.push(other.ids[i]);
        self.data.extend_from_slice(&other.data[i * dims..(i + 1) * dims]);
        self.codes.extend_from_slice(&other.codes[i * dims..(i + 1) * dims]);
        self.sums.push(other.sums[i]);
        self.scales.push(other.scales[i]);
        self.agents.push(other.agents[i]);
    }
}

/// The rows of `a` then `b`, in one segment.
pub(super) fn merge(a: &Segment, b: &Segment) -> Segment {
    let mut out = Segment {
        slots: Vec::with_capacity(a.len() + b.len()),
        gens: Vec::with_capacity(a.len() + b.len()),
        ids: Vec::with_capacity(a.len() + b.len()),
        data: Vec::with_capacity(a.data.len() + b.data.len()),
        codes: Vec::with_capacity(a.codes.len() + b.codes.len()),
        sums: Vec::with_capacity(a.len() + b.len()),
        scales: Vec::with_capacity(a.len() + b.len()),
        agents: Vec::with_capacity(a.len() + b.len()),
    };
    for s in [a, b] {
        out.slots.extend_from_slice(&s.slots);
        out.gens.extend_from_slice(&s.gens);
        out.ids.extend_from_slice(&s.ids);
        out.data.extend_from_slice(&s.data);
        out.codes.extend_from_slice(&s.codes);
        out.sums.extend_from_slice(&s.sums);
        out.scales.extend_from_slice(&s.scales);
        out.agents.extend_from_slice(&s.agents);
    }
    out
}
