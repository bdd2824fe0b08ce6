using System.Reflection;
using PrunerZero.Runtime;

namespace PrunerZero.Tests;

/// <summary>
/// The base of every test class in a project that runs TorchSharp: a test fails when a TorchSharp Tensor or Scalar
/// was freed by the .NET finalizer while it ran, instead of being disposed (a finalizer free while libtorch works
/// on another thread is how the native heap got corrupted: TorchSharp PR #1496). Test parallelism is off in these
/// projects, so the count belongs to this test alone.
/// </summary>
public abstract class TorchGuarded : IDisposable
{
    TorchFinalizers.Counts before = TorchFinalizers.Settle();


    /// <summary>For a test that leaves objects to the finalizer on purpose (<see cref="DeliberateFinalizerUse"/>): what it left so far is not a failure.</summary>
    protected void AcceptFinalized() => before = TorchFinalizers.Settle();

    public void Dispose()
    {
        var after = TorchFinalizers.Settle();
        if (after != before)
            throw new Xunit.Sdk.XunitException(
                $"{after.Tensors - before.Tensors} tensor(s) and {after.Scalars - before.Scalars} scalar(s) were freed by the .NET finalizer " +
                "during this test instead of being disposed (a dispose scope or a using is missing, or a number was converted to a Scalar implicitly)");
        GC.SuppressFinalize(this);
    }

    /// <summary>The test classes of <paramref name="tests"/> that do not derive from <see cref="TorchGuarded"/>.</summary>
    public static IEnumerable<string> Unguarded(Assembly tests) =>
        tests.GetTypes()
            .Where(t => t.IsClass && !t.IsAbstract && t.GetMethods().Any(m => m.GetCustomAttributes<FactAttribute>(inherit: true).Any()))
            .Where(t => !typeof(TorchGuarded).IsAssignableFrom(t))
            .Select(t => t.FullName!);
}

/// <summary>Marks a test class that leaves TorchSharp objects to the finalizer on purpose, to test the safety net; <see cref="ScalarLeakScanner"/> skips it.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class DeliberateFinalizerUse : Attribute;
