using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Search;

namespace PrunerZero.Workflows;

/// <summary>
/// `search` with transfer models: each second model is checked before the search starts (config against the
/// sequence length and the target, memory for it with G beside the search model's weights, then a full load with the
/// run's data and calibration settings, released again), hashed, and opened again only for the transfer step at the
/// end, while the search model is still loaded (both are in memory then).
/// </summary>
public static class TransferWorkflow
{
    /// <summary>Every transfer model, checked in the order given; one given twice (the same content hash, so also the same folder) is refused.</summary>
    public static List<TransferTarget> CheckAll(SearchSettings s, RunIdentity identity, TextWriter log, IProgress<string> progress)
    {
        var targets = new List<TransferTarget>();
        foreach (var dir in s.TransferModels) targets.Add(Check(s, identity, dir, targets, log, progress));
        return targets;
    }

    static TransferTarget Check(SearchSettings s, RunIdentity identity, string dir, IReadOnlyList<TransferTarget> earlier, TextWriter log, IProgress<string> progress)
    {
        var options = s.Session with { ModelDir = dir, EvalWindows = null };
        RunIdentity transfer;
        try
        {
            var config = Setup.CheckModel(dir, s.Session.Seqlen, s.Target);
            // With a cluster the search model is not loaded in this process; without, it is held during the transfer.
            long searchWeights = s.Cluster is null ? Checkpoint.TensorBytes(s.Session.ModelDir) : 0;
            int seqlen = s.Session.Seqlen ?? Perplexity.DefaultSeqlen(config);
            try { MemoryPlan.Check(config, Checkpoint.TensorBytes(dir), s.Session.NSamples, seqlen, withG: true, MemoryPlan.AvailableBytes() - searchWeights); }
            catch (PrunerZeroException e) when (searchWeights > 0)
            {
                throw new PrunerZeroException($"beside the search model's {LlamaModel.Gib(searchWeights)} of weights, {e.Template}");
            }
            // The run's data and calibration, hashed once for the search; only the model is new.
            transfer = identity.WithModel(ContentHash.OfCheckpoint(dir));
            // Refused before its trial load: a second copy would only repeat a table.
            if (earlier.FirstOrDefault(p => p.Sha256 == transfer.ModelSha256) is { } twice)
                throw new PrunerZeroException($"given twice (the same checkpoint as {twice.Model})");
            log.WriteLine($"transfer model {dir} (sha256 {transfer.ModelSha256}): checking that it loads");
            using var session = new PruneSession(options, TextWriter.Null, progress, transfer);
        }
        catch (PrunerZeroException e) { throw new PrunerZeroException($"{UserError.P("transfer_model")} {dir}: {e.Template}"); }
        return new TransferTarget(dir, transfer.ModelSha256, () => Open(s, options, transfer, log, progress));
    }

    static IFitness Open(SearchSettings s, SessionOptions options, RunIdentity identity, TextWriter log, IProgress<string> progress)
    {
        log.WriteLine($"transfer: loading {options.ModelDir}");
        var backend = Setup.Backend(options.Device);
        try
        {
            var session = new PruneSession(options, log, progress, identity);
            return new Owned(new PruningFitness(session, s.Target, backend, s.ScreenWindows), session, backend);
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
}
