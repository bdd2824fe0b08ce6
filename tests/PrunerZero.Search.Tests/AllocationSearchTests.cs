// The allocation search on a loss with a known optimum: a quadratic bowl over the block sparsities whose minimum
// (on the grid, mean = target) is known, plus a deterministic estimate error that shrinks with the windows.
using PrunerZero.Search;

namespace PrunerZero.Search.Tests;

public sealed class AllocationSearchTests() : TempRoot("allocate")
{
    sealed class Bowl(double[] optimum) : IAllocationFitness
    {
        public int Calls;
        public string Protocol => "bowl";
        public int Blocks => optimum.Length;

        public double Loss(IReadOnlyList<double> s, int windows, CancellationToken ct)
        {
            Calls++;
            double loss = 1 + Enumerable.Range(0, s.Count).Sum(b => (s[b] - optimum[b]) * (s[b] - optimum[b]) * (1 + b));
            // A stable, allocation-dependent error of at most 0.002 / windows: few windows mislead a little.
            ulong h = 1469598103934665603UL;
            foreach (var v in s) h = (h ^ (ulong)Math.Round(v * 1e6)) * 1099511628211UL;
            return loss + (h % 1000) / 1000.0 * 0.002 / windows;
        }
    }

    static readonly double[] Optimum = [0.65, 0.75, 0.675, 0.725, 0.7, 0.7];

    AllocationSearchOptions Options(int generations) => new()
    {
        Target = 0.7, Step = 0.025, Generations = generations, Offspring = 12, Stages = [(1, 4), (16, 1)], Seed = 3,
    };

    RunStore Store(string name, AllocationSearchOptions o, bool resume)
    {
        string dir = Path.Combine(Root, name);
        Directory.CreateDirectory(dir);
        var identity = o.Identity().Append(new("fitness", "bowl")).ToDictionary();
        return RunStore.Open(Path.Combine(dir, RunStore.FileName), identity, resume, new HashSet<string> { "generations" });
    }

    [Fact]
    public void Finds_the_optimum_keeps_the_target_and_never_gets_worse()
    {
        var o = Options(60);
        using var store = Store("bowl", o, resume: false);
        var report = AllocationSearch.Run(new Bowl(Optimum), o, store);
        Assert.Equal(Optimum, report.BestSparsity.Select(s => Math.Round(s, 6)));
        foreach (var g in report.History) Assert.Equal(0, g.Levels.Sum());                        // mean = target, always
        for (int i = 1; i < report.History.Count; i++) Assert.True(report.History[i].Loss <= report.History[i - 1].Loss);
        Assert.True(report.History[0].Loss > report.BestLoss);
    }

    [Fact]
    public void A_resumed_run_makes_the_same_decisions()
    {
        var full = Options(12);
        List<AllocationGeneration> straight;
        using (var store = Store("straight", full, resume: false))
            straight = AllocationSearch.Run(new Bowl(Optimum), full, store).History.ToList();

        using (var store = Store("resumed", Options(5), resume: false))
            AllocationSearch.Run(new Bowl(Optimum), Options(5), store);
        AllocationSearchReport resumed;
        using (var store = Store("resumed", full, resume: true))
            resumed = AllocationSearch.Run(new Bowl(Optimum), full, store);
        Assert.Equal(5, resumed.ResumedGenerations);
        Assert.Equal(straight.Select(g => (g.Generation, string.Join(",", g.Levels), g.Loss)),
                     resumed.History.Select(g => (g.Generation, string.Join(",", g.Levels), g.Loss)));
    }

    [Fact]
    public void A_stopped_run_ends_at_a_finished_generation_and_other_settings_are_refused()
    {
        var o = Options(30);
        using var cts = new CancellationTokenSource();
        var progress = new Progress(() => cts.Cancel());
        AllocationSearchReport report;
        using (var store = Store("stop", o, resume: false))
            report = AllocationSearch.Run(new Bowl(Optimum), o, store, progress, cts.Token);
        Assert.True(report.Stopped);
        Assert.Single(report.History);
        Assert.Throws<RunParametersMismatchException>(() => Store("stop", o with { Seed = 4 }, resume: true));
        using var bad = Store("bad", o, resume: false);
        Assert.Throws<ArgumentException>(() => AllocationSearch.Run(new Bowl(Optimum), o with { Stages = [(4, 2)] }, bad));   // the last stage must keep one
    }

    /// <summary>Synchronous progress (System.Progress posts to the thread pool): calls back on the first report.</summary>
    sealed class Progress(Action first) : IProgress<string>
    {
        public void Report(string value) => first();
    }
}
