using System.Diagnostics;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.ZeroShot;

// Dimension letters: B sequences in a batch, T tokens, C hidden, V vocab, N scored positions.

/// <summary>
/// Zero-shot multiple-choice accuracy with lm-evaluation-harness semantics: every option's log-likelihood
/// log P(continuation | context), prediction = argmax (acc) and argmax of log-likelihood / len(choice text)
/// (acc_norm, length in code points as the harness's Python len()), ties to the first option as numpy's argmax.
///
/// Batching: the LLaMA forward here has no KV cache, so a shared context cannot be computed once and reused;
/// instead all options of an item go through one forward as B rows (right-padded, padded positions never read:
/// attention is causal, so padding after a row's tokens cannot reach them), and consecutive items are packed
/// into the same forward while B·T stays within a token budget (always at least one whole item). Only the
/// scored positions go through the final norm and the head, so the (B, T, V) logits are never materialised.
/// Items are processed longest first (as the harness sorts its requests) so that packed items pad little.
/// </summary>
public static class ZeroShotEvaluator
{
    /// <summary>Default budget of B·T tokens per forward.</summary>
    public const int DefaultBatchTokens = 4096;

    /// <summary>Runs every task (the first <paramref name="limit"/> items of each when given) and reports acc, acc_norm, stderr and means.</summary>
    public static ZeroShotReport Run(LlamaModel model, TextTokenizer tok, IReadOnlyList<ZeroShotTask> tasks, int? limit = null,
        IProgress<string>? progress = null, bool bos = false, int batchTokens = DefaultBatchTokens)
    {
        if (tasks.Count == 0) throw new PrunerZeroException("no zero-shot tasks given");
        var sw = Stopwatch.StartNew();
        var results = tasks.Select(t => Evaluate(model, tok, t, limit, progress, bos, batchTokens)).ToList();
        return new ZeroShotReport
        {
            Tasks = results, Bos = bos, MaxLength = MaxLength(model.Config), Limit = limit, Seconds = sw.Elapsed.TotalSeconds,
        };
    }

    /// <summary>The harness's max_length: max_position_embeddings (a sliding window is part of the forward, not a limit).</summary>
    public static int MaxLength(LlamaConfig c) => c.MaxPositionEmbeddings;

    /// <summary>One task.</summary>
    public static ZeroShotTaskResult Evaluate(LlamaModel model, TextTokenizer tok, ZeroShotTask task, int? limit = null,
        IProgress<string>? progress = null, bool bos = false, int batchTokens = DefaultBatchTokens)
    {
        if (limit is <= 0) throw new PrunerZeroException($"{UserError.P("limit")} must be positive, got {limit}");
        if (batchTokens <= 0) throw new PrunerZeroException($"the batch token budget must be positive, got {batchTokens}");
        int n = Math.Min(limit ?? int.MaxValue, task.Items.Count);
        int maxLength = MaxLength(model.Config);
        var sw = Stopwatch.StartNew();
        int correct = 0, correctNorm = 0, truncated = 0, done = 0;

        // Every item's windows (one per option) first: tokenization is cheap next to the forwards.
        var prepared = new (ZeroShotItem Item, int[][] Windows, int[] ContLens, int Longest)[n];
        for (int i = 0; i < n; i++)
        {
            var item = task.Items[i];
            if (item.Choices.Count == 0 || item.Gold < 0 || item.Gold >= item.Choices.Count)
                throw new PrunerZeroException($"{task.Label} item {item.Id}: gold {item.Gold} outside its {item.Choices.Count} options");
            var w = new int[item.Choices.Count][];
            var c = new int[item.Choices.Count];
            bool cut = false;
            for (int j = 0; j < w.Length; j++)
            {
                var choice = item.Choices[j];
                var (ctx, cont) = ZeroShotEncoding.EncodePair(tok, choice.Context, choice.Continuation, bos);
                if (cont.Length == 0)
                    throw new PrunerZeroException($"{task.Label} item {item.Id}: the continuation '{choice.Continuation}' encodes to no tokens after its context");
                (w[j], bool t) = ZeroShotEncoding.Window(ctx, cont, maxLength);
                c[j] = cont.Length;
                cut |= t;
            }
            if (cut) truncated++;
            prepared[i] = (item, w, c, w.Max(x => x.Length - 1));
        }

        // Longest first (as the harness orders requests), so items packed into one forward have similar lengths
        // and little padding; accuracy does not depend on the order.
        var order = Enumerable.Range(0, n).OrderByDescending(i => prepared[i].Longest).ThenBy(i => i).ToArray();
        var pending = new List<int>();
        var windows = new List<int[]>();
        var contLens = new List<int>();
        int longest = 0;

        void Flush()
        {
            if (pending.Count == 0) return;
            var lls = LogLikelihoods(model, windows, contLens);
            int r = 0;
            foreach (int i in pending)
            {
                var item = prepared[i].Item;
                var (pred, predNorm) = Predict(lls.AsSpan(r, item.Choices.Count).ToArray(), item.Choices);
                r += item.Choices.Count;
                if (pred == item.Gold) correct++;
                if (predNorm == item.Gold) correctNorm++;
                done++;
            }
            pending.Clear(); windows.Clear(); contLens.Clear(); longest = 0;
            string norm = task.ReportsAccNorm ? $", acc_norm {(double)correctNorm / done:0.0000}" : "";
            progress?.Report($"{task.Label}: item {done}/{n}, acc {(double)correct / done:0.0000}{norm} ({sw.Elapsed.TotalSeconds:0.0} s)");
        }

        using (no_grad())
        {
            foreach (int i in order)
            {
                var p = prepared[i];
                int newLongest = Math.Max(longest, p.Longest);
                if (pending.Count > 0 && (long)(windows.Count + p.Windows.Length) * newLongest > batchTokens) Flush();
                pending.Add(i);
                windows.AddRange(p.Windows);
                contLens.AddRange(p.ContLens);
                longest = Math.Max(longest, p.Longest);
            }
            Flush();
        }

        double acc = (double)correct / n, accNorm = (double)correctNorm / n;
        return new ZeroShotTaskResult(task.Name, task.Label, task.Derived, n, truncated, acc, Stderr(acc, n),
            task.ReportsAccNorm ? accNorm : null, task.ReportsAccNorm ? Stderr(accNorm, n) : null, sw.Elapsed.TotalSeconds, task.Source);
    }

    /// <summary>argmax of the log-likelihoods (acc) and of log-likelihood / len(choice) (acc_norm); the first of equal maxima wins.</summary>
    public static (int Pred, int PredNorm) Predict(IReadOnlyList<double> lls, IReadOnlyList<ZeroShotChoice> choices)
    {
        int pred = 0, predNorm = 0;
        double best = double.NegativeInfinity, bestNorm = double.NegativeInfinity;
        for (int i = 0; i < lls.Count; i++)
        {
            double norm = lls[i] / ZeroShotTasks.PyLen(choices[i].Text);
            if (i == 0 || lls[i] > best) { best = lls[i]; pred = i; }
            if (i == 0 || norm > bestNorm) { bestNorm = norm; predNorm = i; }
        }
        return (pred, predNorm);
    }

    /// <summary>The harness's stderr of a mean of 0/1 scores: sample std / sqrt(n) = sqrt(p(1 − p) / (n − 1)); NaN for n &lt; 2.</summary>
    public static double Stderr(double p, int n) => n < 2 ? double.NaN : Math.Sqrt(p * (1 - p) / (n - 1));

    /// <summary>
    /// Summed log-probabilities of the last <paramref name="contLens"/>[r] tokens of each window r given the tokens
    /// before them, all windows in one forward: input window[..^1] right-padded to the longest, targets window[1..].
    /// </summary>
    public static double[] LogLikelihoods(LlamaModel model, IReadOnlyList<int[]> windows, IReadOnlyList<int> contLens)
    {
        using var scope = NewDisposeScope();
        int b = windows.Count;
        int t = windows.Max(w => w.Length) - 1;
        var ids = new long[b * t];                  // (B, T), padded with token 0
        var pos = new List<long>();                 // (N) flat index b·T + j of each scored prediction
        var target = new List<long>();              // (N)
        for (int r = 0; r < b; r++)
        {
            var w = windows[r];
            int len = w.Length - 1, c = contLens[r];
            if (c < 1 || c > len) throw new ArgumentException($"window {r}: {c} scored tokens in a window of {w.Length}");
            for (int j = 0; j < len; j++) ids[r * t + j] = w[j];
            for (int j = len - c; j < len; j++) { pos.Add((long)r * t + j); target.Add(w[j + 1]); }
        }
        var dev = model.Embed.device;
        var h = model.HiddenStates(tensor(ids, [b, t]).to(dev));                              // (B, T, C)
        var sel = h.reshape(b * t, h.shape[2]).index_select(0, tensor(pos.ToArray()).to(dev));   // (N, C)
        var logp = model.Logits(sel).to(ScalarType.Float32).log_softmax(-1);             // (N, V)
        var lp = logp.gather(1, tensor(target.ToArray()).to(dev).unsqueeze(1)).squeeze(1)
            .to(ScalarType.Float64).cpu().data<double>().ToArray();
        var sums = new double[b];
        int k = 0;
        for (int r = 0; r < b; r++)
            for (int j = 0; j < contLens[r]; j++) sums[r] += lp[k++];
        return sums;
    }
}
