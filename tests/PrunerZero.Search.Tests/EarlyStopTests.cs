// Early stops of the screen: the exact bound never cuts a child that could have entered the population, so a run with
// it is the run without it (history, population, stored sequence, best), after a crash and resume too, and in batches;
// the stage estimate cuts a clearly bad child and keeps one like the reference.
using Microsoft.Data.Sqlite;
using PrunerZero.Kernels;
using PrunerZero.Search;

namespace PrunerZero.Search.Tests;

public sealed class EarlyStopTests : IDisposable
{
    readonly string _root = Path.Combine(Path.GetTempPath(), "pz-early-" + Guid.NewGuid().ToString("N"));
    public EarlyStopTests() => Directory.CreateDirectory(_root);
    public void Dispose() { try { Directory.Delete(_root, true); } catch (IOException) { } }

    static readonly Expr Target = MetricParser.Parse("mul(sqr(W), mms(G))");

    /// <summary>
    /// The synthetic fitness spread over windows: window w's NLL is ln(perplexity) · f_w with positive weights of mean 1 that
    /// depend on the metric, so the screen perplexity is the synthetic one and windows differ. With <paramref name="stopEarly"/>
    /// it screens by a <see cref="ScreenPlan"/> (reference: weights 1 at perplexity 50) against the bar it is given.
    /// </summary>
    sealed class Windowed(SyntheticFitness inner, bool stopEarly, int[]? stages = null, int windows = 24, int parallel = 1, int crashAt = int.MaxValue) : IFitness
    {
        readonly ScreenPlan _plan = new([.. Enumerable.Repeat(Math.Log(50) * 10, windows)], 10, stages);
        int _calls;
        public int Cut, WindowsSeen;
        public string Protocol => inner.Protocol;
        public int MaxParallelism => parallel;
        public FitnessResult Full(Expr m, CancellationToken ct) => inner.Full(m, ct);
        public FitnessResult Screen(Expr m, CancellationToken ct) => Screen(m, double.PositiveInfinity, ct);

        public FitnessResult Screen(Expr m, double bar, CancellationToken ct)
        {
            if (Interlocked.Increment(ref _calls) == crashAt) throw new IOException("simulated crash");
            var r = inner.Screen(m, ct);
            if (!r.Valid) return r;
            if (!stopEarly) return r with { Tokens = windows * 11L };
            ulong h = 1469598103934665603;
            foreach (char c in m.ToString()) h = (h ^ c) * 1099511628211;
            var f = Enumerable.Range(0, windows).Select(w => 0.2 + (double)((h >> (w % 48)) % 97) / 30).ToArray();
            double mean = f.Average();
            var nll = f.Select(x => Math.Log(r.Perplexity) * 10 * x / mean).ToArray();
            double sum = 0;
            int seen = 0;
            foreach (int end in _plan.StageEnds)
            {
                for (; seen < end; seen++)
                {
                    sum += nll[_plan.Order[seen]];
                    if (_plan.Bound(seen + 1, sum, bar) is { } cut) return Stopped(cut, seen + 1);
                }
                if (end < windows && _plan.Stage(nll, end, bar) is { } staged) return Stopped(staged, end);
            }
            Interlocked.Add(ref WindowsSeen, windows);
            return r with { Tokens = windows * 11L };
        }

        FitnessResult Stopped(ScreenCut cut, int seen)
        {
            Interlocked.Increment(ref Cut);
            Interlocked.Add(ref WindowsSeen, seen);
            return FitnessResult.Stopped(cut, 0.001, seen * 11L);
        }
    }

    SearchOptions Opts(string name, bool resume = false, int iterations = 60) => new()
    {
        RunDir = Path.Combine(_root, name), Population = 10, Iterations = iterations, TopK = 4, Seed = 11, Resume = resume,
        Protocol = "sparsity=0.5", ReportTop = 3,
    };

    static List<string> Sequence(string runDir)
    {
        using var db = new SqliteConnection($"Data Source={Path.Combine(runDir, RunStore.FileName)};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        // By (iteration, slot): with a batch, ids follow the order evaluations finish in.
        cmd.CommandText = "SELECT canonical, iteration, slot FROM evaluations ORDER BY iteration, slot";
        using var r = cmd.ExecuteReader();
        var l = new List<string>();
        while (r.Read()) l.Add($"{r.GetInt32(1)}/{r.GetInt32(2)} {r.GetString(0)}");
        return l;
    }

    static void AssertSameSearch(SearchReport a, SearchReport b, string dirA, string dirB)
    {
        Assert.Equal(a.History.Select(h => (h.Iteration, h.Best, h.Median, h.PopulationSize, h.Evaluations, h.Duplicates, h.SameMask)),
                     b.History.Select(h => (h.Iteration, h.Best, h.Median, h.PopulationSize, h.Evaluations, h.Duplicates, h.SameMask)));
        Assert.Equal(a.Population.Select(c => (c.Iteration, c.Expr.ToString(), c.Screen.Perplexity)), b.Population.Select(c => (c.Iteration, c.Expr.ToString(), c.Screen.Perplexity)));
        Assert.Equal(a.Top.Select(c => (c.Expr.ToString(), c.Full?.Perplexity)), b.Top.Select(c => (c.Expr.ToString(), c.Full?.Perplexity)));
        Assert.Equal(a.Best?.Expr, b.Best?.Expr);
        Assert.Equal(Sequence(dirA), Sequence(dirB));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Exact_rejection_changes_nothing_but_the_windows_evaluated(int parallel)
    {
        var plain = new Windowed(new SyntheticFitness(Target), stopEarly: false, parallel: parallel);
        var early = new Windowed(new SyntheticFitness(Target), stopEarly: true, parallel: parallel);
        var a = SearchRun.Run(Opts("plain"), plain, null, default);
        var b = SearchRun.Run(Opts("early"), early, null, default);
        AssertSameSearch(a, b, Opts("plain").RunDir, Opts("early").RunDir);
        Assert.True(early.Cut > 5, $"only {early.Cut} children were cut");
        Assert.Equal(early.Cut, b.Cut);
        Assert.Equal(b.Cut, b.History[^1].Cut);
        Assert.Equal(0, a.Cut);
        Assert.True(b.ForwardTokens < a.ForwardTokens, $"{b.ForwardTokens} vs {a.ForwardTokens}");

        // Every cut child: stored without a perplexity, with a bound at or above its bar, and its true screen value
        // (the plain run's) at or above the bar too: it could never have entered.
        var truth = LoadScreens(Opts("plain").RunDir);
        using var db = new SqliteConnection($"Data Source={Path.Combine(Opts("early").RunDir, RunStore.FileName)};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT canonical, screen_ppl, screen_cut, screen_bound, screen_bar, screen_seen, screen_windows FROM evaluations WHERE screen_cut IS NOT NULL";
        using var r = cmd.ExecuteReader();
        int n = 0;
        while (r.Read())
        {
            n++;
            Assert.True(r.IsDBNull(1));
            Assert.Equal("Bound", r.GetString(2));
            Assert.True(r.GetDouble(3) >= r.GetDouble(4));
            Assert.True(truth[r.GetString(0)] >= r.GetDouble(4));
            Assert.InRange(r.GetInt32(5), 1, r.GetInt32(6) - 1);
        }
        Assert.Equal(b.Cut, n);
    }

    static Dictionary<string, double> LoadScreens(string runDir)
    {
        using var db = new SqliteConnection($"Data Source={Path.Combine(runDir, RunStore.FileName)};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT canonical, screen_ppl FROM evaluations WHERE screen_ppl IS NOT NULL";
        using var r = cmd.ExecuteReader();
        var d = new Dictionary<string, double>();
        while (r.Read()) d[r.GetString(0)] = r.GetDouble(1);
        return d;
    }

    [Fact]
    public void A_run_with_cuts_crashed_and_resumed_makes_the_same_decisions()
    {
        var whole = SearchRun.Run(Opts("whole"), new Windowed(new SyntheticFitness(Target), true), null, default);
        Assert.Throws<IOException>(() => SearchRun.Run(Opts("crash"), new Windowed(new SyntheticFitness(Target), true, crashAt: 40), null, default));
        var resumed = new Windowed(new SyntheticFitness(Target), true);
        var after = SearchRun.Run(Opts("crash", resume: true), resumed, null, default);
        AssertSameSearch(whole, after, Opts("whole").RunDir, Opts("crash").RunDir);
        Assert.Equal(whole.Cut, after.Cut);
        Assert.Equal(whole.ForwardTokens, after.ForwardTokens);   // stored results count the tokens they took
        Assert.True(resumed.Cut < whole.Cut);                     // the stored cuts were not screened again
    }

    [Fact]
    public void The_bound_cuts_only_when_the_rest_cannot_bring_the_perplexity_under_the_bar()
    {
        var plan = new ScreenPlan([5.0, 1.0, 3.0, 2.0], 10, null);
        Assert.Equal(new[] { 0, 2, 3, 1 }, plan.Order);                           // highest dense NLL first
        double bar = Math.Exp(20.0 / 40);                                  // needs a sum of 20 over 40 tokens
        Assert.Null(plan.Bound(2, 19.9, bar));
        Assert.Null(plan.Bound(2, 20.0, bar));                             // the margin: at the bar exactly is not proven
        var cut = plan.Bound(2, 20.1, bar)!;
        Assert.Equal(CutKind.Bound, cut.Kind);
        Assert.Equal(Math.Exp(20.1 / 40), cut.Bound, 12);
        Assert.Null(plan.Bound(4, 99, bar));                               // every window seen: the value itself decides
        Assert.Null(plan.Bound(2, 99, double.PositiveInfinity));           // no bar while the population fills
        Assert.Null(plan.Bound(2, double.NaN, bar));                       // a NaN is reported, never cut
    }

    [Fact]
    public void The_stage_estimate_cuts_a_clearly_worse_child_and_keeps_one_like_the_reference()
    {
        var rng = new Random(5);
        var dense = Enumerable.Range(0, 128).Select(_ => 1000 + 300 * rng.NextDouble()).ToArray();
        var plan = new ScreenPlan(dense, 255, [16, 128]);
        Assert.Equal(new[] { 16, 128 }, plan.StageEnds);
        Assert.Equal(Enumerable.Range(0, 16).Select(j => j * 8).Order(), plan.Order.Take(16).Order());
        double densePpl = Math.Exp(dense.Sum() / (128.0 * 255));
        // 5% more NLL per window than dense, with noise: perplexity far above a bar at 1.02 x dense.
        var worse = dense.Select(d => d * 1.05 + rng.NextDouble() * 4).ToArray();
        var cut = plan.Stage(worse, 16, densePpl * 1.02)!;
        Assert.Equal(CutKind.Stage, cut.Kind);
        Assert.True(cut.Bound >= densePpl * 1.02);
        // Like dense (the bar just above it): kept for the next stage.
        var like = dense.Select(d => d + rng.NextDouble() - 0.5).ToArray();
        Assert.Null(plan.Stage(like, 16, densePpl * 1.002));
        Assert.Throws<ArgumentException>(() => new ScreenPlan(dense, 255, [16, 64]));    // the last stage must be every window
        Assert.Throws<ArgumentException>(() => new ScreenPlan(dense, 255, [64, 16, 128]));
    }

    [Fact]
    public void Staged_screens_cut_by_estimate_and_are_stored_as_such()
    {
        var staged = new Windowed(new SyntheticFitness(Target), stopEarly: true, stages: [6, 24]);
        var r = SearchRun.Run(Opts("staged"), staged, null, default);
        Assert.True(r.Cut > 0);
        using var db = new SqliteConnection($"Data Source={Path.Combine(Opts("staged").RunDir, RunStore.FileName)};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM evaluations WHERE screen_cut = 'Stage' AND screen_seen = 6 AND screen_ppl IS NULL";
        Assert.True((long)cmd.ExecuteScalar()! > 0);
        Assert.DoesNotContain(r.Population, c => c.Screen.Cut is not null);
    }
}
