// SparseGPT per layer: this project's sweep (SparseGpt.InverseFactor + SparseGpt.Prune: TorchSharp factorizations,
// the 128-column blocks in C# parallel over rows, the lazy update as one matmul per block) against the
// column-by-column formulation in PyTorch ops through TorchSharp: the same factorization, the same per-block
// mask rule, but every column's rank-1 update applied at once to all later columns (no lazy batching), as
//   for i: q = w.clone(); q[mask1[:, i]] = 0; err = (w − q) / d; W[:, i:] −= err.unsqueeze(1) @ Hinv[i, i:].unsqueeze(0)
// Stopwatch timing (each path runs seconds to minutes), `--repeat` runs of each. Writes its table between
// markers in the results file, so the kernel tables around it stay.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using PrunerZero.Bench;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Bench.Reference;

public static class SparseGptBench
{
    const string Begin = "<!-- sparsegpt:begin -->", End = "<!-- sparsegpt:end -->";

    public static int Run(string[] args)
    {
        var shapes = new List<(int R, int K)> { (4096, 4096), (11008, 4096), (4096, 11008) };
        int repeat = 1, tokens = 2048;
        string? outPath = null;
        for (int i = 0; i < args.Length; i++)
            switch (args[i])
            {
                case "--shapes":
                    shapes = args[++i].Split(',').Select(s => s.Split('x')).Select(p => (int.Parse(p[0], CultureInfo.InvariantCulture), int.Parse(p[1], CultureInfo.InvariantCulture))).ToList();
                    break;
                case "--repeat": repeat = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--tokens": tokens = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--out": outPath = args[++i]; break;
                default: Console.Error.WriteLine($"error: unknown option {args[i]}; usage: sparsegpt [--shapes RxK,...] [--repeat N] [--tokens N] [--out FILE]"); return 2;
            }
        string load0 = BenchRunner.LoadAverage();
        var sb = new StringBuilder();
        sb.AppendLine(Begin);
        sb.AppendLine("## SparseGPT per layer: blocked sweep vs the column-by-column reference formulation");
        sb.AppendLine();
        sb.AppendLine($"`dotnet run -c Release --project bench/PrunerZero.Bench.Reference -- sparsegpt {string.Join(' ', args)}`; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, " +
                      $"{Environment.ProcessorCount} cores, {torch.get_num_threads()} libtorch threads, best of {repeat}. 50% unstructured; synthetic W ~ N(0, 0.02²), " +
                      $"H = (2/N)·XᵀX of N = {tokens} correlated inputs (independent columns with log-normal scales plus a shared rank-64 part).");
        sb.AppendLine();
        sb.AppendLine("- (a) this project: `SparseGpt.InverseFactor` (dead inputs, dampening, Cholesky, cholesky_inverse, upper Cholesky; TorchSharp) + `SparseGpt.Prune` (128-column blocks swept in C# in parallel over rows, one `addmm_` per block for the later columns).");
        sb.AppendLine("- (b) the reference formulation in PyTorch ops through TorchSharp: the same factorization and per-block mask rule, then column by column `W[:, i:] -= err ⊗ Hinv[i, i:]` over all later columns (no lazy batching).");
        sb.AppendLine("- Masks differing and the largest weight difference (relative to max |W|) compare (a) with (b) after the whole layer.");
        sb.AppendLine();
        sb.AppendLine("| shape R×K | Hessian MB | (a) factor s | (a) sweep s | (a) total s | (b) total s | a/b | masks differing | max Δw / max\\|W\\| |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        using var _ = no_grad();
        foreach (var (rows, cols) in shapes)
        {
            using var scope = NewDisposeScope();
            Console.WriteLine($"sparsegpt {rows}x{cols}: making W and H ({tokens} inputs)");
            var gen = new Generator(7);
            var w0 = randn(rows, cols, generator: gen).Times(0.02f);
            var x = (randn(tokens, cols, generator: gen) * randn(1, cols, generator: gen).exp()).Plus(randn(tokens, 64, generator: gen).matmul(randn(64, cols, generator: gen)).Times(0.5f));
            var h = x.t().matmul(x).Times(2.0 / tokens);
            x.Dispose();
            var target = PruneTarget.Unstructured(0.5);

            double bestFactor = double.MaxValue, bestSweep = double.MaxValue, bestA = double.MaxValue, bestB = double.MaxValue;
            Tensor? a = null, b = null;
            for (int r = 0; r < repeat; r++)
            {
                a?.Dispose();
                a = w0.clone();
                var sw = Stopwatch.StartNew();
                var (hinv, dead) = SparseGpt.InverseFactor(h, "bench");
                double factor = sw.Elapsed.TotalSeconds;
                SparseGpt.Prune(a, hinv, dead, target, default, ownMask: true);
                double total = sw.Elapsed.TotalSeconds;
                hinv.Dispose();
                bestFactor = Math.Min(bestFactor, factor);
                bestSweep = Math.Min(bestSweep, total - factor);
                bestA = Math.Min(bestA, total);
                Console.WriteLine($"  (a) factor {factor:0.000} s, sweep {total - factor:0.000} s");
            }
            for (int r = 0; r < repeat; r++)
            {
                b?.Dispose();
                var sw = Stopwatch.StartNew();
                b = ReferencePrune(w0, h, 0.5);
                bestB = Math.Min(bestB, sw.Elapsed.TotalSeconds);
                Console.WriteLine($"  (b) {sw.Elapsed.TotalSeconds:0.000} s");
            }
            long masks = a!.EqualTo(0).ne(b!.EqualTo(0)).sum().item<long>();
            double diff = (a - b).abs().max().item<float>() / w0.abs().max().item<float>();
            double mb = 4.0 * cols * cols / (1024 * 1024);
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {rows}×{cols} | {mb:0} | {bestFactor:0.00} | {bestSweep:0.00} | {bestA:0.00} | {bestB:0.0} | {bestA / bestB:0.000} | {masks} of {(long)rows * cols} | {diff:G3} |");
            Console.WriteLine($"  a/b {bestA / bestB:0.000}; masks differing {masks}; max diff {diff:G3}");
            if (outPath != null) Write(outPath, sb + $"\n(partial: the run is still going)\n{End}\n");   // keep what is measured so far
        }
        sb.AppendLine();
        sb.AppendLine($"Load average before: {load0}; after: {BenchRunner.LoadAverage()} ({Environment.ProcessorCount} means this run alone kept every core busy).");
        sb.AppendLine(End);
        string section = sb.ToString();
        Console.WriteLine(section);
        if (outPath != null)
        {
            Write(outPath, section);
            Console.WriteLine($"wrote {outPath}");
        }
        return 0;
    }

    /// <summary>Replaces the section between the markers (or appends it).</summary>
    static void Write(string path, string section)
    {
        string text = File.Exists(path) ? File.ReadAllText(path) : "";
        int i = text.IndexOf(Begin, StringComparison.Ordinal), j = text.IndexOf(End, StringComparison.Ordinal);
        text = i >= 0 && j > i ? text[..i] + section.TrimEnd('\n') + text[(j + End.Length)..] : text.TrimEnd('\n') + "\n\n" + section;
        File.WriteAllText(path, text);
    }

    /// <summary>fasterprune as the reference writes it, with each column's update applied to every later column at once.</summary>
    static Tensor ReferencePrune(Tensor w0, Tensor h0, double sparsity, int blocksize = 128)
    {
        using var outer = NewDisposeScope();
        var W = w0.clone();
        var H = h0.clone();
        long cols = W.shape[1];
        using var zero = 0.ToScalar();
        using var one = 1.ToScalar();
        var dead = H.diagonal().EqualTo(0);
        H.diagonal().masked_fill_(dead, one);
        W.masked_fill_(dead.unsqueeze(0), zero);
        var damp = H.diagonal().mean().Times(0.01);
        H.diagonal().PlusInPlace(damp);
        H = linalg.cholesky(H);
        H = cholesky_inverse(H);
#pragma warning disable CS0618   // torch.linalg.cholesky(H, upper=True): TorchSharp binds it as Tensor.cholesky(upper)
        var Hinv = H.cholesky(upper: true);
#pragma warning restore CS0618
        for (long i1 = 0; i1 < cols; i1 += blocksize)
        {
            using var scope = NewDisposeScope();
            long i2 = Math.Min(i1 + blocksize, cols), count = i2 - i1;
            var W1 = W.narrow(1, i1, count);
            var Hinv1 = Hinv.narrow(0, i1, count).narrow(1, i1, count);
            var tmp = W1.Squared() / Hinv1.diagonal().Squared().reshape(1, -1);
            var thresh = tmp.flatten().sort().Values[(long)(tmp.NumberOfElements * sparsity)];
            var mask1 = tmp.le(thresh);
            for (long i = 0; i < count; i++)
            {
                using var column = NewDisposeScope();   // each column's outer product is R·(K − c) floats: free it at once
                long c = i1 + i;
                var w = W.select(1, c);
                var d = Hinv[c, c];
                var q = w.clone();
                q.masked_fill_(mask1.select(1, i), zero);
                var err = (w - q) / d;
                W.narrow(1, c, cols - c).sub_(err.unsqueeze(1).matmul(Hinv.narrow(0, c, 1).narrow(1, c, cols - c)));
                w.copy_(q);
            }
        }
        return W.MoveToOuterDisposeScope();
    }
}
