using PrunerZero.Runtime.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

/// <summary>
/// The trainer's AdamW and gradient clipping against TorchSharp's own (torch.optim.AdamW and clip_grad_norm_ in
/// libtorch's formulation), step for step. TorchSharp's leave Scalars to the finalizer, so this class uses them on
/// purpose as the independent reference and accepts what they leave.
/// </summary>
[DeliberateFinalizerUse]
public class AdamWTests : TorchGuarded
{
    static (Tensor A, Tensor B) Params(int seed)
    {
        using var gen = new Generator((ulong)seed);
        return (randn([6, 5], generator: gen).requires_grad_(true).DetachFromDisposeScope(),
                randn([5], generator: gen).requires_grad_(true).DetachFromDisposeScope());
    }

    static void Backward(Tensor a, Tensor b, int step)
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator((ulong)(100 + step));
        var x = randn([4, 5], generator: gen);
        var loss = x.matmul(a.t()).sum(1).Squared().sum().Plus(x.matmul(b).exp().sum());
        loss.backward();
    }

    [Fact]
    public void StepsAndClippingEqualTorchSharpsAdamW()
    {
        using var scope = NewDisposeScope();
        var (a1, b1) = Params(1);
        var (a2, b2) = Params(1);
        using var mine = new AdamW([new AdamW.Group([("a", a1)], 0.1), new AdamW.Group([("b", b1)], 0.0)], beta1: 0.9, beta2: 0.95);
        var pa = new TorchSharp.Modules.Parameter(a2.detach().clone(), requires_grad: true);
        var pb = new TorchSharp.Modules.Parameter(b2.detach().clone(), requires_grad: true);
        using var theirs = optim.AdamW(
            [new TorchSharp.Modules.AdamW.ParamGroup([pa], new TorchSharp.Modules.AdamW.Options { weight_decay = 0.1 }),
             new TorchSharp.Modules.AdamW.ParamGroup([pb], new TorchSharp.Modules.AdamW.Options { weight_decay = 0.0 })],
            lr: 0.01, beta1: 0.9, beta2: 0.95);
        for (int step = 0; step < 5; step++)
        {
            double lr = 0.01 * (step + 1) / 5;
            foreach (var g in theirs.ParamGroups) g.LearningRate = lr;
            mine.ZeroGrad();
            theirs.zero_grad();
            Backward(a1, b1, step);
            Backward(pa, pb, step);
            double n1 = mine.ClipGradNorm(1.0);
            double n2 = nn.utils.clip_grad_norm_([pa, pb], 1.0);
            Assert.Equal(n2, n1, 4);
            mine.Step(lr);
            theirs.step();
            Assert.True(a1.allclose(pa, rtol: 1e-5, atol: 1e-6), $"step {step}: a differs");
            Assert.True(b1.allclose(pb, rtol: 1e-5, atol: 1e-6), $"step {step}: b differs");
        }
        Assert.Equal(5, mine.Steps);
        a1.Dispose(); b1.Dispose(); a2.Dispose(); b2.Dispose(); pa.Dispose(); pb.Dispose();
        AcceptFinalized();
    }

    [Fact]
    public void SavedStateResumesToTheSameParameters()
    {
        using var scope = NewDisposeScope();
        string path = Path.Combine(TestCheckpoints.TempDir("adamw"), "optimizer.safetensors");
        var (a1, b1) = Params(2);
        var (a2, b2) = Params(2);
        using var straight = new AdamW([new AdamW.Group([("a", a1), ("b", b1)], 0.1)]);
        for (int step = 0; step < 4; step++) { straight.ZeroGrad(); Backward(a1, b1, step); straight.Step(0.01); }

        using (var first = new AdamW([new AdamW.Group([("a", a2), ("b", b2)], 0.1)]))
        {
            for (int step = 0; step < 2; step++) { first.ZeroGrad(); Backward(a2, b2, step); first.Step(0.01); }
            first.Save(path);
        }
        using var resumed = new AdamW([new AdamW.Group([("a", a2), ("b", b2)], 0.1)]);
        resumed.Load(path);
        Assert.Equal(2, resumed.Steps);
        for (int step = 2; step < 4; step++) { resumed.ZeroGrad(); Backward(a2, b2, step); resumed.Step(0.01); }
        Assert.True(a1.eq(a2).all().item<bool>() && b1.eq(b2).all().item<bool>(), "a resumed optimizer takes other steps than an uninterrupted one");
        a1.Dispose(); b1.Dispose(); a2.Dispose(); b2.Dispose();
    }
}
