// Mask fingerprints in the search: a candidate whose masks equal an evaluated one's copies its fitness
// (no Screen call), is stored as "same mask", and is kept out of the leaders; results equal a run without them.
using Microsoft.Data.Sqlite;
using PrunerZero.Kernels;
using PrunerZero.Search;

namespace PrunerZero.Search.Tests;

public sealed class MaskFingerprintTests() : TempRoot("fp")
{
    static readonly Expr Target = MetricParser.Parse("mul(sqr(W), mms(G))");

    SearchOptions Opts(string name, bool resume = false) => new()
    {
        RunDir = Path.Combine(Root, name), Population = 12, Iterations = 60, TopK = 4, Seed = 7,
        Resume = resume, Protocol = "sparsity=0.5", ReportTop = 5,
    };

    /// <summary>The synthetic fitness with its screen-mask fingerprint exposed, counting Screen calls; crashes at the n-th call when asked.</summary>
    sealed class Fingerprinted(SyntheticFitness inner, int parallel = 1, int crashAtScreen = int.MaxValue) : IFitness, IMaskFingerprint
    {
        int _screens;
        public readonly List<string> Screened = [];
        public string Protocol => inner.Protocol;
        public int MaxParallelism => parallel;
        public string FingerprintMethod => "sha256 of the synthetic screen masks";
        public string? MaskFingerprint(Expr metric, CancellationToken ct) => inner.ScreenMaskFingerprint(metric);
        public FitnessResult Screen(Expr m, CancellationToken ct)
        {
            if (Interlocked.Increment(ref _screens) == crashAtScreen) throw new IOException("simulated crash");
            var r = inner.Screen(m, ct);
            lock (Screened) Screened.Add(m.ToString());
            return r;
        }
        public FitnessResult Full(Expr m, CancellationToken ct) => inner.Full(m, ct);
    }

    [Fact]
    public void Monotone_transforms_share_a_fingerprint_and_different_masks_do_not()
    {
        var f = new SyntheticFitness(Target);
        string? Fp(string e) => f.ScreenMaskFingerprint(MetricParser.Parse(e));
        Assert.Equal(Fp("abs(W)"), Fp("sqr(W)"));
        Assert.Equal(Fp("mul(abs(W), X)"), Fp("mul(sqr(W), sqr(X))"));
        Assert.NotEqual(Fp("abs(W)"), Fp("mul(abs(W), X)"));
        Assert.NotEqual(Fp("abs(W)"), Fp("mul(abs(W), G)"));
        Assert.NotNull(Fp("abs(W)"));
        // And the fingerprint really is of the masks: equal fingerprints, equal fitness.
        Assert.Equal(f.Screen(MetricParser.Parse("abs(W)"), default).Perplexity, f.Screen(MetricParser.Parse("sqr(W)"), default).Perplexity);
    }

    static List<(string Canonical, string? Fp, long? SameAs, long Id)> Rows(string runDir)
    {
        using var db = new SqliteConnection($"Data Source={Path.Combine(runDir, RunStore.FileName)};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT canonical, mask_fingerprint, same_mask_as, id FROM evaluations ORDER BY id";
        using var r = cmd.ExecuteReader();
        var l = new List<(string, string?, long?, long)>();
        while (r.Read()) l.Add((r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.IsDBNull(2) ? null : r.GetInt64(2), r.GetInt64(3)));
        return l;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Same_mask_candidates_are_not_evaluated_and_the_search_is_unchanged(int parallel)
    {
        var plain = SearchRun.Run(Opts("plain"), new SyntheticFitness(Target, maxParallelism: parallel), null, default);
        var fit = new Fingerprinted(new SyntheticFitness(Target), parallel);
        var lines = new List<string>();
        var r = SearchRun.Run(Opts("fp"), fit, new SyncProgress(s => { lock (lines) lines.Add(s); }), default);

        // Same search: the copies are the values an evaluation would have given.
        Assert.Equal(plain.Population.Select(c => c.Expr.ToString()), r.Population.Select(c => c.Expr.ToString()));
        Assert.Equal(plain.History.Select(h => (h.Best, h.Median, h.Evaluations)), r.History.Select(h => (h.Best, h.Median, h.Evaluations)));

        // Saved evaluations: counted, stored with their source, never screened.
        Assert.True(r.SameMask > 0, "the synthetic search makes same-mask candidates (monotone transforms)");
        Assert.Equal(r.Evaluations - r.SameMask + SearchRun.BaselineMetrics.Count, fit.Screened.Count);
        Assert.Equal(r.Evaluations - r.SameMask, r.FitnessCalls);
        var rows = Rows(Opts("fp").RunDir);
        var byId = rows.ToDictionary(x => x.Id);
        var copies = rows.Where(x => x.SameAs is not null).ToList();
        Assert.Equal(r.SameMask, copies.Count);
        foreach (var c in copies)
        {
            var src = byId[c.SameAs!.Value];
            Assert.Equal(src.Fp, c.Fp);
            Assert.Null(src.SameAs);
            Assert.True(src.Id < c.Id);
            Assert.DoesNotContain(c.Canonical, fit.Screened);
            Assert.Contains(src.Canonical, fit.Screened);
        }
        // Every evaluated (valid) row's mask is distinct from every other evaluated row's.
        var evaluated = rows.Where(x => x.SameAs is null && x.Fp is not null).Select(x => x.Fp).ToList();
        Assert.Equal(evaluated.Count, evaluated.Distinct().Count());

        // Leaders are distinct masks, and the plain run's leaders include same-mask twins (so the filter matters or at least holds).
        var fpOf = rows.ToDictionary(x => x.Canonical, x => x.Fp);
        var leaderFps = r.Top.Select(c => fpOf[c.Expr.ToString()]).ToList();
        Assert.Equal(leaderFps.Count, leaderFps.Distinct().Count());
        Assert.Equal(5, r.Top.Count);

        Assert.Contains(lines, l => l.Contains("same mask as #"));
        Assert.Equal(r.SameMask, r.History[^1].SameMask);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void A_crashed_and_resumed_fingerprinted_run_equals_the_uninterrupted_one(int parallel)
    {
        var reference = SearchRun.Run(Opts("ref"), new Fingerprinted(new SyntheticFitness(Target), parallel), null, default);
        var o = Opts("crash");
        var calls = new List<string>();
        bool first = true;
        foreach (int crashAt in new[] { 4, 10, 10 })
        {
            var f = new Fingerprinted(new SyntheticFitness(Target), parallel, crashAt);
            Assert.Throws<IOException>(() => SearchRun.Run(o with { Resume = !first }, f, null, default));
            first = false;
            calls.AddRange(f.Screened);
        }
        var last = new Fingerprinted(new SyntheticFitness(Target), parallel);
        var resumed = SearchRun.Run(o with { Resume = true }, last, null, default);
        calls.AddRange(last.Screened);

        Assert.Equal(reference.Population.Select(c => c.Expr.ToString()), resumed.Population.Select(c => c.Expr.ToString()));
        Assert.Equal(reference.Top.Select(c => (c.Expr.ToString(), c.Full?.Perplexity)), resumed.Top.Select(c => (c.Expr.ToString(), c.Full?.Perplexity)));
        Assert.Equal(reference.History, resumed.History);
        Assert.Equal(reference.SameMask, resumed.SameMask);
        Assert.Equal(calls.Count, calls.Distinct().Count());
        Assert.Equal(reference.Evaluations - reference.SameMask + SearchRun.BaselineMetrics.Count, calls.Count);
    }

    sealed class SyncProgress(Action<string> on) : IProgress<string> { public void Report(string v) => on(v); }
}
