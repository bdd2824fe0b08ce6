// PruningFitness on a real (tiny) model, called directly: its mask fingerprints follow the masks the screen would
// apply (moved from PrunerZero.Cli.Tests/MaskFingerprintCliTests with its assertions), and its protocol and identity
// hold no path.
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;

namespace PrunerZero.Workflows.Tests;

public class PruningFitnessTests : TorchGuarded
{
    [Fact]
    public void Fingerprints_follow_the_masks_and_equal_fingerprints_mean_equal_screen_fitness()
    {
        var s = TinyInputs.Setup();
        var options = TinyInputs.Session(s);
        using var backend = new CpuBackend();
        using var session = new PruneSession(options, TextWriter.Null);
        var fit = new PruningFitness(session, PruneTarget.Unstructured(0.5), backend, screenWindows: 2);
        string? Fp(string e) => fit.MaskFingerprint(Metrics.Resolve(e), default);
        double Ppl(string e) => fit.Screen(Metrics.Resolve(e), default).Perplexity;

        string? magnitude = Fp("abs(W)");
        Assert.NotNull(magnitude);
        Assert.Equal(64, magnitude!.Length);                        // SHA-256, hex
        Assert.Equal(magnitude, Fp("sqr(W)"));                      // a monotone transform: same masks
        Assert.Equal(Fp("mul(abs(W), X)"), Fp("mul(sqr(W), sqr(X))"));
        Assert.NotEqual(magnitude, Fp("mul(abs(W), X)"));           // wanda prunes other weights
        Assert.NotEqual(magnitude, Fp("mul(abs(W), G)"));
        Assert.Equal(Ppl("abs(W)"), Ppl("sqr(W)"));
        // Taken after a screen has pruned the model: still the dense model's masks.
        Assert.Equal(magnitude, Fp("abs(W)"));
        Assert.Null(Fp("sub(W, W)"));                               // no ranking: invalid, no fingerprint
        // 2:4 is another target, so other masks.
        var nm = new PruningFitness(session, PruneTarget.ParseNM("2:4"), backend, screenWindows: 2);
        Assert.NotEqual(magnitude, nm.MaskFingerprint(Metrics.Resolve("abs(W)"), default));
    }

    /// <summary>
    /// Against a bar the child beats, a screen runs to its end and gives the value it gives without a bar, bit for bit;
    /// against a bar it cannot beat, it stops early with a proven bound (at or above the bar, at most the true value) on
    /// fewer tokens; with stages, a hopeless child stops at the first stage.
    /// </summary>
    [Fact]
    public void A_screen_stops_only_when_the_child_cannot_get_under_the_bar()
    {
        var s = TinyInputs.Setup();
        using var backend = new CpuBackend();
        using var session = new PruneSession(TinyInputs.Session(s), TextWriter.Null);
        // 32 windows of 32 tokens, 8 per forward: the bound is tested after windows 8, 16 and 24.
        Assert.Equal(8, Perplexity.WindowBatch(session.Model.Config, 32));
        var fit = new PruningFitness(session, PruneTarget.Unstructured(0.5), backend, screenWindows: 32);
        var wanda = Metrics.Wanda;
        var plain = fit.Screen(wanda, default);
        Assert.True(plain.Valid && plain.Cut is null);
        Assert.Equal(32L * 32, plain.Tokens);
        double p = plain.Perplexity;

        var above = fit.Screen(wanda, p * (1 + 1e-9), default);
        Assert.Null(above.Cut);
        Assert.Equal(p, above.Perplexity);                                   // other window order, same value
        Assert.Equal(p, fit.Screen(wanda, p, default).Perplexity);           // at the bar exactly: not proven, evaluated in full

        var below = fit.Screen(wanda, Math.Sqrt(p), default);
        var cut = Assert.IsType<Search.ScreenCut>(below.Cut);
        Assert.Equal(Search.CutKind.Bound, cut.Kind);
        Assert.True(below.Valid && double.IsNaN(below.Perplexity));
        Assert.InRange(cut.Bound, Math.Sqrt(p), p);
        Assert.True(cut.WindowsSeen < 32 && below.Tokens == cut.WindowsSeen * 32L, $"{cut.WindowsSeen} windows, {below.Tokens} tokens");

        // Staged: the same value when it passes; a child far above the bar stops at the first stage's estimate, where
        // the bound cannot stop it yet (half the windows hold about half the NLL, short of ln(bar) over all).
        var staged = new PruningFitness(session, PruneTarget.Unstructured(0.5), backend, screenWindows: 32, stages: [8, 32]);
        Assert.Equal(p, staged.Screen(wanda, p * 2, default).Perplexity);
        var bad = staged.Screen(wanda, Math.Sqrt(p) * 1.5, default);
        Assert.Equal(Search.CutKind.Stage, bad.Cut?.Kind);
        Assert.Equal(8, bad.Cut!.WindowsSeen);
        Assert.Contains("stages=8,32", staged.Protocol);
        Assert.DoesNotContain("stages", fit.Protocol);
    }

    /// <summary>Counts the scoring calls of the CPU back end.</summary>
    sealed class CountingBackend : IMetricBackend
    {
        readonly CpuBackend _cpu = new();
        public int Scores;
        public string Name => "counting cpu";
        public void Score(Expr e, ReadOnlySpan<float> weight, ReadOnlySpan<float> g, ReadOnlySpan<float> x, int rows, int cols, Span<float> scores)
        {
            Scores++;
            _cpu.Score(e, weight, g, x, rows, cols, scores);
        }
        public void MaskUnstructured(ReadOnlySpan<float> scores, int rows, int cols, double sparsity, Span<byte> prune) => _cpu.MaskUnstructured(scores, rows, cols, sparsity, prune);
        public void MaskNM(ReadOnlySpan<float> scores, int rows, int cols, int n, int m, Span<byte> prune) => _cpu.MaskNM(scores, rows, cols, n, m, prune);
        public void Dispose() => _cpu.Dispose();
    }

    [Fact]
    public void A_candidate_is_scored_once_and_its_fingerprint_is_that_of_the_weights_it_zeroed()
    {
        var s = TinyInputs.Setup();
        var options = TinyInputs.Session(s);
        using var backend = new CountingBackend();
        using var session = new PruneSession(options, TextWriter.Null);
        var fit = new PruningFitness(session, PruneTarget.Unstructured(0.5), backend, screenWindows: 2);
        int linears = session.Model.Blocks.Count * LinearKinds.All.Length;
        var wanda = Metrics.Resolve("mul(abs(W), X)");

        string? fp = fit.MaskFingerprint(wanda, default);
        Assert.Equal(linears, backend.Scores);
        double ppl = fit.Screen(wanda, default).Perplexity;
        Assert.Equal(linears, backend.Scores);                       // the screen used the masks of the fingerprint

        // Independently: the fingerprint of the pruned model's zeros (the random dense weights have none).
        using (var zeros = new MaskFingerprint())
        {
            for (int i = 0; i < session.Model.Blocks.Count; i++)
                foreach (var k in LinearKinds.All)
                {
                    using var scope = TorchSharp.torch.NewDisposeScope();
                    var w = session.Model.Blocks[i][k];
                    var bits = w.EqualTo(0).to(TorchSharp.torch.ScalarType.Byte).contiguous().data<byte>().ToArray();
                    zeros.Add(bits, (int)w.shape[0], (int)w.shape[1]);
                }
            Assert.Equal(zeros.Finish(), fp);
        }

        fit.Screen(Metrics.Magnitude, default);                      // another candidate prunes the model anew
        Assert.Equal(2 * linears, backend.Scores);
        Assert.Equal(ppl, fit.Screen(wanda, default).Perplexity);    // so wanda is scored again, to the same result
        Assert.Equal(3 * linears, backend.Scores);
    }

    [Fact]
    public void A_moved_model_folder_has_the_same_protocol_identity_and_screen_fitness()
    {
        var s = TinyInputs.Setup();
        string moved = Runtime.Tests.TestCheckpoints.TempDir("moved");
        foreach (var f in Directory.GetFiles(s.Model)) File.Copy(f, Path.Combine(moved, Path.GetFileName(f)));
        var target = PruneTarget.Unstructured(0.5);
        var a = PruningFitness.Identity(TinyInputs.Session(s), target, 2);
        var b = PruningFitness.Identity(TinyInputs.Session(s) with { ModelDir = moved }, target, 2);
        Assert.Equal(a.ClusterProtocol, b.ClusterProtocol);
        Assert.Equal(a.StoreInputs, b.StoreInputs);
        Assert.Equal(ContentHash.OfCheckpoint(s.Model), a.ModelSha256);   // the G cache's model key, unchanged
        Assert.NotEqual(a.ClusterProtocol, PruningFitness.Identity(TinyInputs.Session(s), target, 3).ClusterProtocol);

        using var backend = new CpuBackend();
        using var here = new PruneSession(TinyInputs.Session(s), TextWriter.Null, identity: a);
        using var there = new PruneSession(TinyInputs.Session(s) with { ModelDir = moved }, TextWriter.Null, identity: b);
        var fa = new PruningFitness(here, target, backend, 2);
        var fb = new PruningFitness(there, target, backend, 2);
        Assert.Equal(fa.Protocol, fb.Protocol);
        Assert.DoesNotContain(s.Model, fa.Protocol);
        Assert.Equal(fa.Screen(Metrics.PrunerZero, default).Perplexity, fb.Screen(Metrics.PrunerZero, default).Perplexity);
        // What the previous version stored ("model=DIR " in front) reads as today's protocol.
        Assert.Equal(fa.Protocol, PruningFitness.UpgradeStoredProtocol($"model={s.Model} {fa.Protocol}"));
        Assert.Equal(fa.Protocol, PruningFitness.UpgradeStoredProtocol(fa.Protocol));
    }
}
