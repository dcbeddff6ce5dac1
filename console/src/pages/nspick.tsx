// A namespace chooser: the namespaces this key may list, but any name may be typed (a key
// asking for a namespace it lacks gets the server's 403, shown as such).
import { useEffect, useState } from 'preact/hooks';
import { listAll, type Namespace } from '../api';
import { useSession } from '../session';
import { Field } from '../ui';

export function useNamespaceNames(): string[] {
  const s = useSession();
  const [names, setNames] = useState<string[]>((s.who.namespaces ?? []).map((g) => g.namespace));
  useEffect(() => {
    listAll<Namespace>('/v1/namespaces', (b) => b)
      .then((all) => setNames(all.map((n) => n.name)))
      .catch(() => {});
  }, []);
  return names;
}

export function NamespacePicker(props: { value: string; onChange: (v: string) => void; names: string[] }) {
  return (
    <Field label="Namespace">
      {(id) => (
        <>
          <input
            id={id}
            list={`${id}-list`}
            required
            autocomplete="off"
            value={props.value}
            onInput={(e) => props.onChange(e.currentTarget.value)}
          />
          <datalist id={`${id}-list`}>
            {props.names.map((n) => (
              <option key={n} value={n} />
            ))}
          </datalist>
        </>
      )}
    </Field>
  );
}

/** The namespace in the address (`?ns=`), else the first one the key may list. */
export function useChosenNamespace(params: URLSearchParams, names: string[]): [string, (v: string) => void] {
  const [ns, setNs] = useState(params.get('ns') ?? '');
  useEffect(() => {
    if (!ns && names.length) setNs(names[0]);
  }, [names.join('\n')]);
  return [ns, setNs];
}
