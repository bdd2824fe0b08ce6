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
/// A screen against a finite bar stops early by <see cref="ScreenPlan"/>: exactly (the bound), and with
/// <paramref name="stages"/> also by the stage estimate.
/// </summary>
public sealed class PruningFitness(PruneSession session, PruneTarget target, IMetricBackend backend, int screenWindows, int batch = 1,
    IReadOnlyList<int>? stages = null)
    : IFitness, IMaskFingerprint
{
    readonly Lock _lock = new();
    readonly long[] _screenStarts = Perplexity.WindowStarts(session.EvalTokens.Length, session.Seqlen, session.Options.EvalPath, screenWindows, spread: true);
    ScreenPlan? _plan;

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
        $"{session.Protocol(target)} pruning=one-shot(dense X, G) screen_windows={screenWindows}(spread){StagesText(stages, " stages=")} full=all windows";

    /// <summary>The stages as the protocol and identity write them ("16,128"), with <paramref name="prefix"/>; "" without stages.</summary>
    public static string StagesText(IReadOnlyList<int>? stages, string prefix = "") =>
        stages is { Count: > 1 } ? prefix + string.Join(",", stages.Select(v => v.ToString(CultureInfo.InvariantCulture))) : "";

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
    public static RunIdentity Identity(SessionOptions s, PruneTarget target, int screenWindows, IReadOnlyList<int>? stages = null)
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
            // Only when staged: exact early rejection changes no value, so runs with and without it share an identity.
            .. stages is { Count: > 1 } ? [("stages", StagesText(stages))] : Array.Empty<(string, string)>(),
        ]);
    }

    /// <summary>The search's batch; the lock still runs one evaluation at a time.</summary>
    public int MaxParallelism => batch;

    public FitnessResult Screen(Expr metric, CancellationToken ct) => Screen(metric, double.PositiveInfinity, ct);

    /// <summary>
    /// The screen perplexity, or a cut result once the windows seen show the child cannot get under <paramref name="bar"/>.
    /// Windows are evaluated in the plan's order, stage by stage; the perplexity adds them in window order, so a screen
    /// that runs to the end has the same value however its windows were ordered and batched.
    /// </summary>
    public FitnessResult Screen(Expr metric, double bar, CancellationToken ct)
    {
        lock (_lock)
        {
            using var range = Nvtx.Range("search iteration");
            var sw = System.Diagnostics.Stopwatch.StartNew();
            // The plan needs the dense model's NLL per window: made before this child prunes the model, at the first bar.
            var plan = bar < double.PositiveInfinity || stages is { Count: > 1 } ? Plan() : null;
            var report = session.PruneOneShot(metric, target, backend, reuse: true);
            if (!report.Valid) return FitnessResult.Invalid(report.InvalidReason ?? "invalid", sw.Elapsed.TotalSeconds);
            int n = _screenStarts.Length, seqlen = session.Seqlen;
            var order = plan?.Order ?? [.. Enumerable.Range(0, n)];
            var ends = plan?.StageEnds ?? [n];
            var nll = new double[n];
            double sum = 0;
            int from = 0, seenNow = 0;
            foreach (int end in ends)
            {
                ScreenCut? cut = null;
                double before = sum;
                var stage = order.Skip(from).Take(end - from).ToArray();
                var part = Perplexity.WindowNll(session.Model, session.EvalTokens, seqlen, _screenStarts, stage,
                    (seen, partSum) =>
                    {
                        seenNow = from + seen;
                        sum = before + partSum;
                        cut = plan?.Bound(seenNow, sum, bar);
                        return cut is null;
                    });
                foreach (int w in stage.Take(seenNow - from)) nll[w] = part[w];
                if (cut is null && end < n) cut = plan?.Stage(nll, end, bar);
                if (cut is not null) return FitnessResult.Stopped(cut, sw.Elapsed.TotalSeconds, (long)seenNow * seqlen);
                from = end;
            }
            double mean = Perplexity.SumInOrder(nll) / ((long)n * (seqlen - 1));
            double ppl = Math.Exp(mean);
            long tokens = (long)n * seqlen;
            if (!double.IsFinite(ppl)) return FitnessResult.Invalid($"perplexity is {ppl}", sw.Elapsed.TotalSeconds) with { Tokens = tokens };
            return new FitnessResult(true, ppl, null, sw.Elapsed.TotalSeconds) { Tokens = tokens };
        }
    }

    /// <summary>The screen plan: the dense model's NLL of every screen window, measured once (one screen's forward).</summary>
    ScreenPlan Plan()
    {
        if (_plan is not null) return _plan;
        if (stages is { Count: > 1 } && stages[^1] != _screenStarts.Length)
            throw new PrunerZeroException($"{UserError.P("stages")} ends at {stages[^1]} windows, but the text has only {_screenStarts.Length} windows of {session.Seqlen} tokens for {UserError.P("screen_windows")} {screenWindows}");
        session.RestoreDense();
        var dense = Perplexity.WindowNll(session.Model, session.EvalTokens, session.Seqlen, _screenStarts, null);
        return _plan = new ScreenPlan(dense, session.Seqlen - 1, stages);
    }

    public FitnessResult Full(Expr metric, CancellationToken ct)
    {
        lock (_lock)
        {
            using var range = Nvtx.Range("search full check");
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var report = session.PruneOneShot(metric, target, backend, reuse: true);
            if (!report.Valid) return FitnessResult.Invalid(report.InvalidReason ?? "invalid", sw.Elapsed.TotalSeconds);
            var ppl = session.Evaluate(null);
            if (!double.IsFinite(ppl.Perplexity)) return FitnessResult.Invalid($"perplexity is {ppl.Perplexity}", sw.Elapsed.TotalSeconds) with { Tokens = ppl.Tokens };
            return new FitnessResult(true, ppl.Perplexity, null, sw.Elapsed.TotalSeconds) { Tokens = ppl.Tokens };
        }
    }
}
