namespace PrunerZero.Workflows;

/// <summary>What a workflow opens, disposed in reverse order of creation (a session before the back end it uses).</summary>
public sealed class DisposalStack : IDisposable
{
    readonly Stack<IDisposable> _all = new();

    public T Add<T>(T d) where T : IDisposable
    {
        _all.Push(d);
        return d;
    }

    public void Dispose()
    {
        while (_all.Count > 0) _all.Pop().Dispose();
    }
}
