// Transfer: after the search's final full re-check, the leaders and the baselines are pruned and evaluated on a
// second model with the same full protocol, to see whether what the search found on one model holds on another.
// Each result is stored in the run database under (the transfer model's content hash, the metric's canonical form)
// the moment it is made, so a resumed run never redoes a finished transfer evaluation, and the second model is
// opened only when some evaluation is missing.
using System.Diagnostics;
using PrunerZero.Kernels;

namespace PrunerZero.Search;

/// <summary>
/// The second model: its folder, its content hash (what the results are stored under) and how to open a fitness
/// on it (called at most once, only when a result is missing; disposed after use when it is <see cref="IDisposable"/>).
/// </summary>
public sealed record TransferTarget(string Model, string Sha256, Func<IFitness> Open);

/// <summary>One transferred metric: a leader ("leader N", by screen rank) or a baseline (its name).</summary>
/// <param name="SearchFull">The full check on the search model.</param>
/// <param name="Transfer">The full check on the transfer model.</param>
/// <param name="SearchRank">1 = lowest search-model perplexity among the valid rows (ties share a rank); null when invalid.</param>
/// <param name="TransferRank">The same on the transfer model.</param>
public sealed record TransferRow(string Name, Expr Expr, FitnessResult SearchFull, FitnessResult Transfer, int? SearchRank, int? TransferRank);

/// <param name="Protocol">The transfer fitness's protocol, as recorded with its results.</param>
public sealed record TransferReport(string Model, string Sha256, string Protocol, IReadOnlyList<TransferRow> Rows);

public static class TransferRun
{
    /// <summary>Evaluates (or reads back) every leader with a valid full check and every baseline on the transfer model.</summary>
    public static TransferReport Run(TransferTarget target, IReadOnlyList<CandidateResult> leaders, IReadOnlyList<BaselineResult> baselines,
                                     RunStore store, IProgress<string>? progress, CancellationToken ct)
    {
        var subjects = new List<(string Name, Expr Expr, FitnessResult SearchFull)>();
        for (int i = 0; i < leaders.Count; i++)
            if (leaders[i].Full is { Valid: true } full) subjects.Add(($"leader {i + 1}", leaders[i].Expr, full));
        foreach (var b in baselines) subjects.Add((b.Name, b.Expr, b.Full));

        var stored = store.LoadTransfers(target.Sha256);
        // One evaluation per canonical form (a leader may be a baseline in another spelling).
        var missing = subjects.Where(s => !stored.ContainsKey(Oos.Canonical(s.Expr))).DistinctBy(s => Oos.Canonical(s.Expr)).ToList();
        progress?.Report(missing.Count == 0
            ? $"transfer: all {subjects.Count} results on {target.Model} are stored"
            : $"transfer: {missing.Count} metrics to evaluate on {target.Model} ({subjects.Count} rows)");
        IFitness? fitness = null;
        try
        {
            int done = 0;
            foreach (var (name, expr, _) in missing)
            {
                string key = Oos.Canonical(expr);
                ct.ThrowIfCancellationRequested();
                fitness ??= target.Open();
                var sw = Stopwatch.StartNew();
                var r = fitness.Full(expr, ct) ?? throw new InvalidOperationException($"transfer fitness returned null for {expr}");
                if (r.Seconds <= 0) r = r with { Seconds = sw.Elapsed.TotalSeconds };
                var row = new StoredTransfer(target.Model, fitness.Protocol, r);
                store.AddTransfer(target.Sha256, key, row);
                stored[key] = row;
                string outcome = r.Valid ? $"perplexity {r.Perplexity:0.###}" : $"invalid: {r.InvalidReason}";
                progress?.Report($"transfer {++done}/{missing.Count}: {name} = {expr}: {outcome} ({r.Seconds:0.0} s)");
            }
        }
        finally
        {
            (fitness as IDisposable)?.Dispose();
        }

        var results = subjects.Select(s => (s.Name, s.Expr, s.SearchFull, Transfer: stored[Oos.Canonical(s.Expr)].Result)).ToList();
        var searchRanks = Ranks(results.Select(r => r.SearchFull).ToList());
        var transferRanks = Ranks(results.Select(r => r.Transfer).ToList());
        var rows = results.Select((r, i) => new TransferRow(r.Name, r.Expr, r.SearchFull, r.Transfer, searchRanks[i], transferRanks[i])).ToList();
        string protocol = string.Join(" | ", subjects.Select(s => stored[Oos.Canonical(s.Expr)].Protocol).Distinct());
        return new TransferReport(target.Model, target.Sha256, protocol, rows);
    }

    /// <summary>Competition ranks (1 + the number of strictly better valid results); null for an invalid or non-finite one.</summary>
    public static List<int?> Ranks(IReadOnlyList<FitnessResult> results) =>
        results.Select(r => Usable(r) ? 1 + results.Count(o => Usable(o) && o.Perplexity < r.Perplexity) : (int?)null).ToList();

    static bool Usable(FitnessResult r) => r.Valid && double.IsFinite(r.Perplexity);
}

/// <summary>A transfer result as stored: the model folder it was made on, the fitness protocol, the result.</summary>
public sealed record StoredTransfer(string Model, string Protocol, FitnessResult Result);
