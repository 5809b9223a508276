"""Tuple losses against references (a cross-batch memory), and ``CrossBatchMemory`` itself.

With ``ref_embeddings``, the batch's anchors meet the batch and the references as positives
and negatives; the references are never anchors and get no gradient. Each loss is checked
against its loop reference (from its own test module) run on the batch followed by the
references with only the batch's rows as anchors, and with ``gradcheck`` in float64.
"""

import pickle

import pytest
import torch
from _rounding import U64
from test_losses_modern import (
    assert_ms_mining_is_certain,
    cosine_error,
    ref_multi_similarity,
    ref_supcon,
)
from test_losses_pair import ref_contrastive, ref_triplet_loss

from sk_deepmetric.losses import (
    AngularLoss,
    ContrastiveLoss,
    CrossBatchMemory,
    MultiSimilarityLoss,
    NPairsLoss,
    SupConLoss,
    TripletMarginLoss,
)
from sk_deepmetric.miners import BatchHardMiner

# anchors: classes 0-3 twice, and a class (4) whose only other members are references; the
# references hold a class of their own (5) and a few of the batch's
BATCH_LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4])
REF_LABELS = torch.tensor([0, 1, 4, 5, 5, 2, 7])


def _batch(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(BATCH_LABELS), 4, generator=g, dtype=dtype)
    r = torch.randn(len(REF_LABELS), 4, generator=g, dtype=dtype)
    return x, BATCH_LABELS.clone(), r, REF_LABELS.clone()


def _together(x, labels, r, ref_labels):
    return torch.cat([x, r]), torch.cat([labels, ref_labels]), len(x)


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
def test_contrastive_with_references_matches_reference(distance):
    x, labels, r, ref_labels = _batch()
    got = ContrastiveLoss(0.3, 1.7, distance)(x, labels, r, ref_labels).item()
    want = ref_contrastive(*_together(x, labels, r, ref_labels)[:2], 0.3, 1.7, distance, len(x))
    assert got == pytest.approx(want, abs=1e-6)


def test_reference_labels_beyond_the_batch_labels_dtype_are_other_classes():
    # uint8 batch labels and reference classes 256 + c: no wrap-around onto classes 0..
    x, labels, r, ref_labels = _batch()
    loss = ContrastiveLoss(0.3, 1.7)
    got = loss(x, labels.to(torch.uint8), r, ref_labels + 256)
    assert got.item() == loss(x, labels, r, ref_labels + 256).item()
    assert got.item() != loss(x, labels, r, ref_labels).item()


@pytest.mark.parametrize("miner", ["semihard", "batch_hard", "all", "hard", "easy", None])
@pytest.mark.parametrize("smooth", [False, True])
def test_triplet_with_references_matches_reference(miner, smooth):
    x, labels, r, ref_labels = _batch(seed=1)
    loss = TripletMarginLoss(margin=0.4, miner=miner, smooth=smooth)
    got = loss(x, labels, r, ref_labels).item()
    xs, ys, n = _together(x, labels, r, ref_labels)
    assert got == pytest.approx(
        ref_triplet_loss(xs, ys, 0.4, miner, "euclidean", smooth, n), abs=1e-6
    )


@pytest.mark.parametrize("epsilon", [0.1, None])
def test_multi_similarity_with_references_matches_reference(epsilon):
    x, labels, r, ref_labels = _batch(seed=2)
    xs, ys, n = _together(x, labels, r, ref_labels)
    loss = MultiSimilarityLoss(epsilon=epsilon)
    if epsilon is not None:
        assert_ms_mining_is_certain(xs, ys, epsilon, U64)
    want = ref_multi_similarity(xs, ys, loss.alpha, loss.beta, loss.base, epsilon, n)
    got = loss(x, labels, r, ref_labels).item()
    # 2-Lipschitz in the cosines, as without references
    assert got == pytest.approx(want, rel=8 * U64, abs=4 * cosine_error(U64))


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_supcon_with_references_matches_reference(temperature):
    x, labels, r, ref_labels = _batch(seed=3)
    xs, ys, n = _together(x, labels, r, ref_labels)
    got = SupConLoss(temperature)(x, labels, r, ref_labels).item()
    want = ref_supcon(xs, ys, temperature, n)
    assert got == pytest.approx(want, rel=8 * U64, abs=4 * cosine_error(U64) / temperature)


LOSSES = {
    "contrastive": lambda: ContrastiveLoss(),
    "triplet-semihard": lambda: TripletMarginLoss(),
    "triplet-all-smooth": lambda: TripletMarginLoss(miner="all", smooth=True),
    "multi-similarity": lambda: MultiSimilarityLoss(),
    "supcon": lambda: SupConLoss(),
}


@pytest.mark.parametrize("name", LOSSES)
def test_references_gradcheck_and_get_no_gradient(name):
    x, labels, r, ref_labels = _batch(seed=4)
    loss = LOSSES[name]()
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: loss(e, labels, r, ref_labels), (x,))
    r.requires_grad_(True)
    loss(x, labels, r, ref_labels).backward()
    assert r.grad is None


@pytest.mark.parametrize("name", LOSSES)
def test_no_references_and_empty_references_are_the_batch_alone(name):
    x, labels, r, ref_labels = _batch(seed=5)
    loss = LOSSES[name]()
    alone = loss(x, labels)
    assert torch.equal(loss(x, labels, r[:0], ref_labels[:0]), alone)


def test_reference_arguments_are_checked():
    x, labels, r, ref_labels = _batch()
    loss = ContrastiveLoss()
    with pytest.raises(
        ValueError,
        match=r"`ref_embeddings` and `ref_labels` go together: got "
        r"`ref_embeddings` alone\.",
    ):
        loss(x, labels, ref_embeddings=r)
    with pytest.raises(
        ValueError,
        match=r"`ref_embeddings` must have as many columns as "
        r"`embeddings` \(4\), got 3\.",
    ):
        loss(x, labels, r[:, :3], ref_labels)
    with pytest.raises(
        ValueError,
        match=r"`ref_labels` must be a 1-D tensor with one label per "
        r"embedding \(7\), got shape \(6,\)\.",
    ):
        loss(x, labels, r, ref_labels[:6])
    with pytest.raises(ValueError, match=r"`ref_labels` must be an integer tensor"):
        loss(x, labels, r, ref_labels.double())
    with pytest.raises(ValueError, match=r"a callable `miner` mines within the batch"):
        TripletMarginLoss(miner=BatchHardMiner())(x, labels, r, ref_labels)


# ------------------------------------------------------------------ the memory itself


def test_memory_uses_the_queue_of_earlier_batches_and_then_enqueues():
    g = torch.Generator().manual_seed(0)
    inner = ContrastiveLoss()
    memory = CrossBatchMemory(inner, n_components=4, memory_size=10).double()
    seen = []
    batches = [
        (torch.randn(4, 4, generator=g, dtype=torch.float64), torch.tensor([0, 0, 1, 1]) + 2 * i)
        for i in range(4)
    ]
    for x, y in batches:
        want = inner(x, y, *memory.memory())  # the queue before this batch
        assert torch.equal(memory(x, y), want)
        seen.append((x, y))
        # the queue holds the last 10 embeddings in order, oldest first
        kept_x = torch.cat([b[0] for b in seen])[-10:]
        kept_y = torch.cat([b[1] for b in seen])[-10:]
        got_x, got_y = memory.memory()
        assert torch.equal(got_x, kept_x) and torch.equal(got_y, kept_y)
    assert int(memory.n_enqueued) == 16 and int(memory.n_steps) == 4


def test_memory_waits_for_the_warmup_and_ignores_eval_mode():
    memory = CrossBatchMemory(SupConLoss(), n_components=3, memory_size=8, warmup=2)
    x, y = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    for _ in range(2):
        assert torch.equal(memory(x, y), SupConLoss()(x, y))
    assert int(memory.n_enqueued) == 0
    memory(x, y)
    assert int(memory.n_enqueued) == 4
    memory.eval()
    assert torch.equal(memory(x, y), SupConLoss()(x, y))
    assert int(memory.n_enqueued) == 4 and int(memory.n_steps) == 3
    memory.train()
    memory.reset_memory()
    assert int(memory.n_enqueued) == 0 and int(memory.n_steps) == 0


def test_memory_keeps_the_last_rows_of_a_batch_larger_than_itself():
    memory = CrossBatchMemory(ContrastiveLoss(), n_components=2, memory_size=3)
    x, y = torch.arange(10.0).reshape(5, 2), torch.tensor([0, 1, 0, 1, 2])
    memory(x, y)
    got_x, got_y = memory.memory()
    assert torch.equal(got_x, x[-3:]) and torch.equal(got_y, y[-3:])


def test_memory_state_travels_with_state_dict_and_pickle():
    memory = CrossBatchMemory(ContrastiveLoss(), n_components=2, memory_size=4)
    memory(torch.randn(3, 2), torch.tensor([0, 1, 1]))
    copy = pickle.loads(pickle.dumps(memory))
    assert all(torch.equal(a, b) for a, b in zip(copy.memory(), memory.memory()))
    fresh = CrossBatchMemory(ContrastiveLoss(), n_components=2, memory_size=4)
    fresh.load_state_dict(memory.state_dict())
    assert int(fresh.n_enqueued) == 3


@pytest.mark.parametrize("loss", [NPairsLoss(), AngularLoss(), torch.nn.MSELoss()], ids=repr)
def test_memory_needs_a_loss_that_takes_references(loss):
    with pytest.raises(
        ValueError,
        match=r"`loss` must be a torch module whose forward takes "
        r"`ref_embeddings` and `ref_labels` .*, got " + type(loss).__name__,
    ):
        CrossBatchMemory(loss, n_components=4)


def test_memory_refuses_a_callable_miner_up_front():
    # it mines within the batch: the memory would fail only after the warm-up
    with pytest.raises(ValueError, match="TripletMarginLoss has a callable `miner`"):
        CrossBatchMemory(TripletMarginLoss(miner=BatchHardMiner()), n_components=4, warmup=5)


def test_memory_checks_its_parameters_and_inputs():
    with pytest.raises(ValueError, match="memory_size"):
        CrossBatchMemory(ContrastiveLoss(), n_components=4, memory_size=0)
    with pytest.raises(ValueError, match="warmup"):
        CrossBatchMemory(ContrastiveLoss(), n_components=4, warmup=-1)
    memory = CrossBatchMemory(ContrastiveLoss(), n_components=4)
    with pytest.raises(
        ValueError, match=r"`embeddings` must have `n_components`=4 columns, got 3"
    ):
        memory(torch.randn(2, 3), torch.tensor([0, 1]))
