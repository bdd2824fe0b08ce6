// The score workflow called directly (no CLI, no Console): full numbers equal a plain run's, screen numbers equal
// the search's own fitness on a session of its own, and the fidelity table ranks exactly those numbers.
using PrunerZero.Kernels;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Search;

namespace PrunerZero.Workflows.Tests;

public class ScoreWorkflowTests : TorchGuarded
{
    static readonly string[] Library =
        ["magnitude", "wanda", "pruner-zero", "mul(W, G)", "sqr(G)", "add(mms(G), zsn(W))", "mul(W, X)", "sparsegpt", "mul(W,", "sub(W, W)"];

    [Fact]
    public void Screen_and_full_numbers_equal_separate_evaluations_and_the_fidelity_ranks_them()
    {
        var s = TinyInputs.Setup();
        var target = PruneTarget.Unstructured(0.5);
        var settings = new ScoreSettings { Session = TinyInputs.Session(s), Target = target, Lines = Library, ScreenWindows = [2, 5], TopK = 3 };
        var outcome = ScoreWorkflow.Run(settings, TextWriter.Null, new SyncProgress(_ => { }));
        Assert.Equal(Library.Length, outcome.Rows.Count);
        var plain = ScoreWorkflow.Run(settings with { ScreenWindows = [] }, TextWriter.Null, new SyncProgress(_ => { }));
        Assert.Null(plain.Fidelity);
        var plainPpl = plain.Rows.Where(r => r.Valid).ToDictionary(r => r.Metric!, r => r.Perplexity!.Value);

        var valid = outcome.Rows.Where(r => r.Valid).ToList();
        Assert.Equal(8, valid.Count);   // the 7 metrics and sparsegpt; the parse error and sub(W, W) are not
        Assert.Equal(valid.Select(r => r.Perplexity).Order(), valid.Select(r => r.Perplexity));   // sorted
        foreach (var r in valid) Assert.Equal(plainPpl[r.Metric!], r.Perplexity!.Value);

        using var backend = new CpuBackend();
        using var session = new PruneSession(TinyInputs.Session(s), TextWriter.Null);
        var fit2 = new PruningFitness(session, target, backend, screenWindows: 2);
        var fit5 = new PruningFitness(session, target, backend, screenWindows: 5);
        var both = valid.Where(r => r.Metric != "sparsegpt").ToList();
        Assert.Equal(7, both.Count);
        foreach (var r in both)
        {
            var expr = Metrics.Resolve(r.Line);
            Assert.Equal([2, 5], r.Screens.Select(x => x.Windows));
            Assert.Equal(fit2.Screen(expr, default).Perplexity, r.Screens[0].Perplexity);
            Assert.Equal(fit5.Screen(expr, default).Perplexity, r.Screens[1].Perplexity);
        }
        Assert.All(valid.Single(r => r.Metric == "sparsegpt").Screens, x => Assert.False(x.Valid));

        double[] full = both.Select(r => r.Perplexity!.Value).ToArray();
        Assert.Equal(2, outcome.Fidelity!.Count);
        for (int i = 0; i < 2; i++)
        {
            double[] screen = both.Select(r => r.Screens[i].Perplexity!.Value).ToArray();
            var f = outcome.Fidelity[i];
            Assert.Equal(7, f.Candidates);
            Assert.Equal(RankCorrelation.Spearman(screen, full), f.Spearman);
            Assert.Equal(RankCorrelation.KendallTauB(screen, full), f.KendallTauB);
            Assert.Equal(RankCorrelation.TopKOverlap(screen, full, 3), f.TopKOverlap);
        }
        Assert.StartsWith("screen=one-shot(dense X, G) on 2,5 windows", outcome.ScreenProtocol);
        Assert.StartsWith($"model={s.Model} data=wiki.test.raw", outcome.Protocol);
    }

    [Fact]
    public void Bad_screen_windows_name_the_parameter()
    {
        var e = Assert.Throws<Runtime.PrunerZeroException>(() => ScoreWorkflow.CheckScreenWindows([4, 0], false, 10, WeightUpdate.None));
        Assert.Equal("screen_windows must be positive window counts, got 0", e.Message);
        Assert.StartsWith("--screen-windows must be positive", e.Render(p => "--" + p.Replace('_', '-')));
        Assert.Throws<Runtime.PrunerZeroException>(() => ScoreWorkflow.CheckScreenWindows([], true, 10, WeightUpdate.None));
        ScoreWorkflow.CheckScreenWindows([2, 5], true, 3, WeightUpdate.None);
    }
}
