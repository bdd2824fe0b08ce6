using System.Globalization;
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Search;

namespace PrunerZero.Cli;

/// <summary>
/// `search --transfer-model DIR`: the second model is checked before the search starts (config against --seqlen and
/// the target, memory for it with G beside the search model's weights, then a full load with the run's data and
/// calibration options, released again), hashed, and opened again only for the transfer step at the end, while the
/// search model is still loaded (both are in memory then).
/// </summary>
static class Transfer
{
    /// <summary>Every --transfer-model, checked in the order given; one given twice (the same content hash, so also the same folder) is refused.</summary>
    public static List<TransferTarget> CheckAll(SearchOptionsCli o, PruneTarget target, TextWriter log, IProgress<string> progress)
    {
        var targets = new List<TransferTarget>();
        foreach (var dir in o.TransferModels) targets.Add(Check(o, dir, targets, target, log, progress));
        return targets;
    }

    static TransferTarget Check(SearchOptionsCli o, string dir, IReadOnlyList<TransferTarget> earlier, PruneTarget target, TextWriter log, IProgress<string> progress)
    {
        var options = o.Session() with { ModelDir = dir, EvalWindows = null };
        string sha;
        try
        {
            var config = o.CheckModel(dir, target);
            // With --cluster the search model is not loaded in this process; without, it is held during the transfer.
            long searchWeights = o.Cluster is null ? Checkpoint.TensorBytes(o.Session().ModelDir) : 0;
            int seqlen = o.Seqlen ?? Perplexity.DefaultSeqlen(config);
            try { MemoryPlan.Check(config, Checkpoint.TensorBytes(dir), o.NSamples, seqlen, withG: true, MemoryPlan.AvailableBytes() - searchWeights); }
            catch (PrunerZeroException e) when (searchWeights > 0)
            {
                throw new PrunerZeroException($"beside the search model's {LlamaModel.Gib(searchWeights)} of weights, {e.Message}");
            }
            sha = ContentHash.OfCheckpoint(dir);
            // Refused before its trial load: a second copy would only repeat a table.
            if (earlier.FirstOrDefault(p => p.Sha256 == sha) is { } twice)
                throw new PrunerZeroException($"given twice (the same checkpoint as {twice.Model})");
            log.WriteLine($"transfer model {dir} (sha256 {sha}): checking that it loads");
            using var session = new PruneSession(options, TextWriter.Null, progress);
        }
        catch (PrunerZeroException e) { throw new PrunerZeroException($"--transfer-model {dir}: {e.Message}"); }
        return new TransferTarget(dir, sha, () => Open(o, options, target, log, progress));
    }

    static IFitness Open(SearchOptionsCli o, SessionOptions options, PruneTarget target, TextWriter log, IProgress<string> progress)
    {
        log.WriteLine($"transfer: loading {options.ModelDir}");
        var backend = o.Backend();
        try
        {
            var session = new PruneSession(options, log, progress);
            return new Owned(new PruningFitness(session, target, backend, o.ScreenWindows), session, backend);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    /// <summary>The transfer fitness with the session and back end it owns (the session disposed before the back end).</summary>
    sealed class Owned(IFitness inner, PruneSession session, IMetricBackend backend) : IFitness, IDisposable
    {
        public string Protocol => inner.Protocol;
        public int MaxParallelism => 1;
        public FitnessResult Screen(Expr metric, CancellationToken ct) => inner.Screen(metric, ct);
        public FitnessResult Full(Expr metric, CancellationToken ct) => inner.Full(metric, ct);
        public void Dispose()
        {
            session.Dispose();
            backend.Dispose();
        }
    }

    public static void Print(TransferReport t)
    {
        static string P(FitnessResult f) => f.Valid && double.IsFinite(f.Perplexity) ? f.Perplexity.ToString("0.000", CultureInfo.InvariantCulture) : "invalid";
        Console.WriteLine($"transfer to {t.Model} (sha256 {t.Sha256[..12]}…): {t.Protocol}");
        Console.WriteLine($"{"name",-12} {"search ppl",10} {"transfer ppl",12} {"rank",4} {"rank",4}  metric");
        foreach (var r in t.Rows)
            Console.WriteLine($"{r.Name,-12} {P(r.SearchFull),10} {P(r.Transfer),12} {r.SearchRank?.ToString() ?? "-",4} {r.TransferRank?.ToString() ?? "-",4}  {r.Expr}");
    }
}
