namespace PrunerZero.Search.Tests;

/// <summary>A fresh folder under the temp directory for each test (xUnit makes one instance per test), deleted afterwards.</summary>
public abstract class TempRoot : IDisposable
{
    protected readonly string Root;

    protected TempRoot(string tag)
    {
        Root = Path.Combine(Path.GetTempPath(), $"pz-{tag}-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Root);
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, true); } catch (IOException) { }
        GC.SuppressFinalize(this);
    }
}
