using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

// The loader fix (native/torchsharp_patch.c) must let LibTorch run here with no manual step.
public class TorchLoadTests
{
    [Fact]
    public void TensorOpAndBackwardRun()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3 }, requires_grad: true);
        var loss = (a * a).sum();
        loss.backward();
        Assert.Equal(new float[] { 2, 4, 6 }, a.grad!.data<float>().ToArray());
        Assert.Equal(14f, loss.item<float>());
    }
}
