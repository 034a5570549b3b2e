"""``finsentry bench``: scoring throughput against the usual alternative and the machine's limit.

One run, on the same real headlines (Benzinga titles from the shared data folder):

1. model-only docs/s of finsentry's scorer at several micro-batch sizes;
2. the same model (fp32 weights of the training run) through a Hugging Face
   ``pipeline("text-classification")`` in PyTorch at several batch sizes, its
   best one, and the label agreement of the two (needs the ``train`` extra;
   reported as skipped, with the reason, when torch is missing);
3. end to end through the real broker (replay → daemon → scored topic):
   docs/s, and consumed → scored latency p50/p99 at 25/50/90 % of that rate;
4. the machine's float32 matmul GFLOP/s, the model's FLOPs per item at the
   measured mean token length, and the fraction of the limit reached.

Rounds are interleaved (finsentry, then HF, per round) and medians reported,
so that a noisy shared machine slows both sides alike.
"""

from finsentry.bench._data import load_headlines
from finsentry.bench._flops import bert_flops_per_item, matmul_gflops
from finsentry.bench._run import BenchConfig, format_table, run_bench

__all__ = ["BenchConfig", "bert_flops_per_item", "format_table", "load_headlines", "matmul_gflops", "run_bench"]
