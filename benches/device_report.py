#!/usr/bin/env python3
"""The report of benches/device_check.sh: device_report.json and device_report.md in REPORT_DIR, from
the steps' outputs in WORK (steps.tsv, info_P.out, verify_P.json, bench_P.json, zennit_P.json, tests.out,
ncu.out). Any of them may be missing (a dry run, a skipped or failed step): the report says so.

    python3 benches/device_report.py WORK REPORT_DIR STAGE_DIR CARD DATE DRY "f32 tf32 bf16"
"""
import json
import os
import re
import subprocess
import sys
import time


def main():
    work, report_dir, stage, card, date, dry, precisions = sys.argv[1:8]
    dry, precisions = dry == '1', precisions.split()

    def load(name):
        try:
            with open(os.path.join(work, name)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def text(name):
        try:
            with open(os.path.join(work, name)) as f:
                return f.read()
        except OSError:
            return ''

    steps = [dict(zip(('step', 'exit', 'seconds'), l.split('\t'))) for l in text('steps.tsv').splitlines()]
    ok = {s['step'] for s in steps if s['exit'] == '0'}
    if dry:
        gpu = 'none (dry run)'
    else:
        try:
            gpu = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version,memory.total',
                                  '--format=csv,noheader'], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            gpu = f'nvidia-smi failed: {e}'
    built = os.path.join(stage, 'kernels')
    tests = text('tests.out')
    ncu = text('ncu.out')
    ncu_kernels = sorted(set(re.findall(
        r'^\s*(conv\w+|dense_\w+|maxpool_\w+|relu_backward|prepare_conv|positive|zbox_\w+|scale_heads)\b', ncu, re.M)))

    per_precision = {}
    for p in precisions:
        verify, bench, zennit = load(f'verify_{p}.json'), load(f'bench_{p}.json'), load(f'zennit_{p}.json')
        gated = (verify or {}).get('layers', []) + (verify or {}).get('methods', [])
        ours = {(r['pass'], r['batch']): r for r in (bench or {}).get('rows', [])}
        theirs = {(r['pass'], r['batch']): r for r in (zennit or {}).get('rows', [])}
        ratios = [{'pass': k[0], 'batch': k[1], 'sglrp_images_per_s': ours[k]['images_per_s'],
                   'zennit_images_per_s': theirs[k]['images_per_s'],
                   'ratio': ours[k]['images_per_s'] / theirs[k]['images_per_s']}
                  for k in sorted(ours, key=lambda k: (k[1], k[0])) if k in theirs]
        per_precision[p] = {
            'verify_passed': bool(gated) and all(c['pass'] for c in gated) and f'verify_{p}' in ok,
            'verify_failed': [c['what'] for c in gated if not c['pass']],
            'verify_worst_rel_l2': max((c['rel_l2'] for c in gated), default=None),
            'verify_notes': (verify or {}).get('notes', []),
            'kernels': (bench or {}).get('kernels', []),
            'bench': bench,
            'zennit': zennit,
            'sglrp_over_zennit': ratios,
        }
    report = {
        'card': card,
        'date': date,
        'written': time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()),
        'gpu': gpu,
        'dry_run': dry,
        'kernels_built_with': open(built).read().strip() if os.path.exists(built) else '',
        'seconds': sum(int(s['seconds']) for s in steps),
        'steps': steps,
        'precisions': per_precision,
        'tests': re.findall(r'test result: .*', tests),
        'ncu_nvtx_relevance_conv3_2': {'kernels_profiled': ncu_kernels,
                                       'proved': any(k.startswith('conv') for k in ncu_kernels)},
    }
    os.makedirs(report_dir, exist_ok=True)
    with open(os.path.join(report_dir, 'device_report.json'), 'w') as f:
        json.dump(report, f, indent=2)
    md = markdown(report, text)
    with open(os.path.join(report_dir, 'device_report.md'), 'w') as f:
        f.write(md)
    print(md)


def markdown(report, text):
    md = [f"# CUDA device check — {report['card']} — {report['date']}", '',
          f"GPU: {report['gpu']}", '', f"kernels: {report['kernels_built_with'] or '(not staged)'}", '',
          f"{report['seconds']} s in all.", '', '| step | exit | seconds |', '|---|---|---|']
    md += [f"| {s['step']} | {s['exit']} | {s['seconds']} |" for s in report['steps']]
    md += ['', '## Summary', '', '| precision | verify | sglrp ÷ Zennit, images/s (pass, batch) |', '|---|---|---|']
    for p, r in report['precisions'].items():
        verdict = 'passed' if r['verify_passed'] else ('FAILED: ' + ', '.join(r['verify_failed'])
                                                       if r['verify_failed'] else 'no result')
        ratios = ', '.join(f"{x['pass']} {x['batch']}: {x['ratio']:.2f}" for x in r['sglrp_over_zennit'])
        md.append(f"| {p} | {verdict} | {ratios or 'no result'} |")
    for p, r in report['precisions'].items():
        md += ['', f'## {p}', '', f'### kernels (sglrp bench --precision {p})', '']
        md += [f"- {k['op']}: {k['kernel']} ({k['precision']})" for k in r['kernels']] or ['(no result)']
        md += [f'- note: {n}' for n in r['verify_notes']]
        verified = text(f'verify_{p}.out').strip() if r['verify_worst_rel_l2'] is not None else ''
        md += ['', f'### sglrp verify --device cuda --precision {p}', '',
               verified or '(no result; see device_check.log)', '',
               f'### sglrp bench --precision {p}', '']
        b, z = r['bench'], r['zennit']
        if b:
            md += ['| pass | batch | ms/batch | images/s |', '|---|---|---|---|']
            md += [f"| {x['pass']} | {x['batch']} | {x['ms_per_batch']:.2f} | {x['images_per_s']:.1f} |" for x in b['rows']]
        else:
            md.append('(no result)')
        md += ['', f'### Zennit 0.5.1 on PyTorch, --precision {p}', '']
        if z:
            md += [json.dumps(z['config']), '', '| pass | batch | ms/batch | images/s |', '|---|---|---|---|']
            md += [f"| {x['pass']} | {x['batch']} | {x['ms_per_batch']:.2f} | {x['images_per_s']:.1f} |" for x in z['rows']]
        else:
            md.append('(no result)')
        if r['sglrp_over_zennit']:
            md += ['', f'### sglrp ÷ Zennit, images/s, {p}', '', '| pass | batch | sglrp | Zennit | ratio |',
                   '|---|---|---|---|---|']
            md += [f"| {x['pass']} | {x['batch']} | {x['sglrp_images_per_s']:.1f} | {x['zennit_images_per_s']:.1f} | "
                   f"{x['ratio']:.2f} |" for x in r['sglrp_over_zennit']]
    md += ['', '## GPU tests (cuda_ops --include-ignored)', '']
    md += [f'- {s}' for s in report['tests']] or ['(no result)']
    md += ['', '## ncu --nvtx --nvtx-include "relevance/conv3_2/"', '',
           f"kernels profiled inside the range: {', '.join(report['ncu_nvtx_relevance_conv3_2']['kernels_profiled']) or 'none'}"]
    return '\n'.join(md) + '\n'


if __name__ == '__main__':
    main()
