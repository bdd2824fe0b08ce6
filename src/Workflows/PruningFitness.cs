using System.Globalization;
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Search;

namespace PrunerZero.Workflows;

/// <summary>
/// Search fitness: the model pruned one-shot with the candidate (X and G measured once on the dense model),
/// then WikiText-2 perplexity: on evenly spaced screen windows, or on the full test split for leaders.
/// One model in memory, so evaluations run one at a time (LibTorch already uses every core in the forward).
/// </summary>
public sealed class PruningFitness(PruneSession session, PruneTarget target, IMetricBackend backend, int screenWindows, int batch = 1)
    : IFitness, IMaskFingerprint
{
    readonly Lock _lock = new();

    /// <summary>Windows of <see cref="Screen"/>.</summary>
    public int ScreenWindows => screenWindows;

    public string FingerprintMethod => $"{Kernels.MaskFingerprint.Method}, screen protocol, {target}";

    /// <summary>
    /// The masks Screen applies, hashed as the model is pruned with them (no forward pass); the model stays pruned, so
    /// Screen of the same metric next scores nothing again.
    /// </summary>
    public string? MaskFingerprint(Expr metric, CancellationToken ct)
    {
        lock (_lock) return session.PruneOneShot(metric, target, backend, reuse: true).MaskFingerprint;
    }

    /// <summary>The protocol in words (no path; the inputs' content is in the <see cref="RunIdentity"/>).</summary>
    public string Protocol =>
        $"{session.Protocol(target)} pruning=one-shot(dense X, G) screen_windows={screenWindows}(spread) full=all windows";

    /// <summary>
    /// The protocol as `search` stored it before paths left the run identity: "model=DIR " in front of today's. Mapped
    /// to today's form so a run started then resumes (from any folder holding the same model: the content hashes are
    /// compared separately).
    /// </summary>
    public static string UpgradeStoredProtocol(string stored)
    {
        if (!stored.StartsWith("model=", StringComparison.Ordinal)) return stored;
        int data = stored.IndexOf(" data=", StringComparison.Ordinal);
        return data < 0 ? stored : stored[(data + 1)..];
    }

    /// <summary>
    /// The run identity of this fitness: model, data and calibration by content (hashed here, once) and every setting
    /// that changes a value. The inputs are checked to exist first, so a missing one is named rather than hashed.
    /// </summary>
    public static RunIdentity Identity(SessionOptions s, PruneTarget target, int screenWindows)
    {
        if (!Directory.Exists(s.ModelDir)) throw new PrunerZeroException($"{UserError.P("model")} {s.ModelDir}: no such folder");
        if (!File.Exists(s.EvalPath)) throw new PrunerZeroException($"{UserError.P("dataset")} {s.EvalPath}: no such file");
        if (!File.Exists(s.CalibPath)) throw new PrunerZeroException($"{UserError.P("calib")} {s.CalibPath}: no such file");
        if (screenWindows < 1) throw new PrunerZeroException($"{UserError.P("screen_windows")} must be at least 1, got {screenWindows}");
        return RunIdentity.Of(s.ModelDir, s.EvalPath, s.CalibPath,
        [
            ("nsamples", s.NSamples.ToString(CultureInfo.InvariantCulture)),
            ("seqlen", s.Seqlen?.ToString(CultureInfo.InvariantCulture) ?? "model"),
            ("calib_sampling", s.Sampling.ToString().ToLowerInvariant()),
            ("calib_seed", s.Seed.ToString(CultureInfo.InvariantCulture)),
            ("target", target.ToString()),
            ("screen_windows", screenWindows.ToString(CultureInfo.InvariantCulture)),
            ("pruning", "one-shot(dense X, G)"),
            // Only when not uniform, so runs made before allocations existed keep their identity.
            .. s.Allocation.IsUniform ? Array.Empty<(string, string)>() : [("allocation", s.Allocation.Id)],
        ]);
    }

    /// <summary>The search's batch; the lock still runs one evaluation at a time.</summary>
    public int MaxParallelism => batch;

    public FitnessResult Screen(Expr metric, CancellationToken ct) => Evaluate(metric, screenWindows);

    public FitnessResult Full(Expr metric, CancellationToken ct) => Evaluate(metric, null);

    FitnessResult Evaluate(Expr metric, int? windows)
    {
        lock (_lock)
        {
            using var range = Nvtx.Range(windows is null ? "search full check" : "search iteration");
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var report = session.PruneOneShot(metric, target, backend, reuse: true);
            if (!report.Valid) return FitnessResult.Invalid(report.InvalidReason ?? "invalid", sw.Elapsed.TotalSeconds);
            var ppl = session.Evaluate(windows, spread: windows is not null);
            if (!double.IsFinite(ppl.Perplexity)) return FitnessResult.Invalid($"perplexity is {ppl.Perplexity}", sw.Elapsed.TotalSeconds);
            return new FitnessResult(true, ppl.Perplexity, null, sw.Elapsed.TotalSeconds);
        }
    }
}
