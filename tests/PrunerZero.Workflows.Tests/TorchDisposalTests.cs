namespace PrunerZero.Workflows.Tests;

/// <summary>The disposal guards of this project: every test class derives from TorchGuarded; no call in Workflows leaves a Scalar to the finalizer.</summary>
public class TorchDisposalTests : TorchGuarded
{
    [Fact]
    public void EveryTestClassIsGuarded() => Assert.Empty(TorchGuarded.Unguarded(typeof(TorchDisposalTests).Assembly));

    [Fact]
    public void NoCallLeavesAScalarToTheFinalizer()
    {
        var leaks = new[] { typeof(PruningFitness).Assembly, typeof(TorchDisposalTests).Assembly }.SelectMany(ScalarLeakScanner.Leaks).ToList();
        Assert.True(leaks.Count == 0, $"{leaks.Count} call(s) leave a Scalar to the finalizer:\n" + string.Join("\n", leaks));
    }
}
