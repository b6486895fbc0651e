#!/usr/bin/env python3
"""Writes examples/flows/*.json: the importable example flows (kept as code so their ids,
wiring and settings stay consistent). Run: python3 scripts/make-example-flows.py"""
import json
import os

PKG = 'node_modules/@seedlab/node-red-custom-classifier/example-data'
OUT = os.path.join(os.path.dirname(__file__), '..', 'examples', 'flows')


def flow(prefix, label, info, nodes):
    tab = f'{prefix}0000000000'
    out = [{'id': tab, 'type': 'tab', 'label': label, 'disabled': False, 'info': info}]
    for i, n in enumerate(nodes):
        n.setdefault('z', tab)
        n.setdefault('x', 160 + 220 * (i % 4))
        n.setdefault('y', 100 + 80 * (i // 4))
        out.append(n)
    return out


def nid(prefix, n):
    return f'{prefix}{n:010x}'


def training_flow(prefix, label, loader, trainer_extra, comment):
    i = lambda n: nid(prefix, n)
    return flow(prefix, label, comment, [
        {'id': i(1), 'type': 'comment', 'name': label, 'info': comment, 'x': 200, 'y': 40},
        {'id': i(2), 'type': 'inject', 'name': 'train', 'props': [], 'repeat': '', 'once': False,
         'wires': [[i(3)]], 'x': 120, 'y': 100},
        dict({'id': i(3), 'type': 'classifier-loader', 'name': '', 'wires': [[i(4)]],
              'x': 300, 'y': 100}, **loader),
        {'id': i(4), 'type': 'classifier-upsampler', 'name': '', 'ratio': 0.5, 'mode': 'smote',
         'wires': [[i(5)]], 'x': 480, 'y': 100},
        {'id': i(5), 'type': 'classifier-mixup', 'name': '', 'enabled': True,
         'wires': [[i(6)]], 'x': 660, 'y': 100},
        {'id': i(6), 'type': 'classifier-label-smoothing', 'name': '', 'enabled': True,
         'alpha': 0.1, 'wires': [[i(7)]], 'x': 300, 'y': 200},
        dict({'id': i(7), 'type': 'classifier-trainer', 'name': '', 'epochs': 30, 'batchSize': 32,
              'learningRate': 0.01, 'hiddenUnits': 0, 'dropout': 0, 'focalLoss': False,
              'focalGamma': 2, 'focalAlpha': 0.25, 'l2': 0.00001, 'weightDecay': 0.004,
              'allowNoValidation': False, 'modelDirType': 'str', 'busy': 'queue',
              'queueLength': 1, 'wires': [[i(8)], [i(10)]], 'x': 500, 'y': 200}, **trainer_extra),
        {'id': i(8), 'type': 'classifier-evaluator', 'name': '', 'part': 'auto', 'modelDir': '',
         'modelDirType': 'str', 'csvFile': '', 'plotFolder': '', 'charts': True,
         'wires': [[i(9)]], 'x': 700, 'y': 180},
        {'id': i(9), 'type': 'debug', 'name': 'evaluation', 'active': True, 'tosidebar': True,
         'console': False, 'tostatus': True, 'complete': 'payload.macro', 'targetType': 'msg',
         'statusVal': 'payload.macro.averagePrecision', 'statusType': 'msg',
         'wires': [], 'x': 900, 'y': 180},
        {'id': i(10), 'type': 'debug', 'name': 'progress', 'active': False, 'tosidebar': True,
         'console': False, 'tostatus': True, 'complete': 'payload', 'targetType': 'msg',
         'statusVal': 'payload', 'statusType': 'auto', 'wires': [], 'x': 700, 'y': 240},
    ])


folder = training_flow(
    'a1f0', 'Train from a folder',
    {'mode': 'file', 'path': f'{PKG}/embeddings', 'pathType': 'str', 'format': 'folder',
     'labelColumn': '', 'labelSeparator': ',', 'fileColumn': '', 'startColumn': '',
     'endColumn': '', 'ignoreColumns': '', 'delimiter': 'auto', 'validationSplit': 0.2,
     'seed': 1, 'testData': ''},
    {'modelDir': 'custom-classifier/folder-model'},
    'Trains a classifier on a BirdNET-Analyzer training folder: one subfolder per class of '
    'embeddings files, plus a Noise folder. The data is the synthetic demo set that ships with '
    'the package. Press the inject button; the model is saved in custom-classifier/folder-model '
    'under the Node-RED user directory. To train on your own data, set the loader\'s path to '
    'your training folder (relative paths start at the user directory).')

table = training_flow(
    'b2e0', 'Train from a CSV table',
    {'mode': 'file', 'path': f'{PKG}/table.csv', 'pathType': 'str', 'format': 'table',
     'labelColumn': 'label', 'labelSeparator': ',', 'fileColumn': 'file',
     'startColumn': 'start', 'endColumn': 'end', 'ignoreColumns': '', 'delimiter': 'auto',
     'validationSplit': 0.2, 'seed': 2, 'testData': ''},
    {'modelDir': 'custom-classifier/table-model', 'focalLoss': True},
    'Trains a classifier with focal loss on a CSV table of embeddings: one row per segment, a '
    'label column and a file column (segments of one recording stay on one side of the '
    'validation split). The table is synthetic and ships with the package. Press the inject '
    'button; the evaluator shows per-class metrics and draws the training curves.')

recordings = training_flow(
    'd4c0', 'Train from recordings',
    {'mode': 'file', 'path': f'{PKG}/recordings', 'pathType': 'str', 'format': 'folder',
     'labelColumn': '', 'labelSeparator': ',', 'fileColumn': '', 'startColumn': '',
     'endColumn': '', 'ignoreColumns': '', 'delimiter': 'auto', 'validationSplit': 0.25,
     'seed': 1, 'testData': '', 'holdout': 0, 'settle': 0, 'cropMode': 'center', 'overlap': 0,
     'fmin': 0, 'fmax': 15000, 'audioSpeed': 1, 'embedder': 'builtin', 'modelPath': '',
     'modelSampleRate': 48000, 'modelInputSeconds': 3, 'modelOutput': '', 'customLayers': '',
     'cacheDir': ''},
    {'modelDir': 'custom-classifier/recordings-model'},
    'Trains a classifier on a BirdNET-Analyzer training folder of recordings: one subfolder per '
    'species of WAV clips, plus a Noise folder. The clips are synthetic (a whistle, a chirp, a '
    'trill and a two-note call) and ship with the package. The loader decodes each clip, '
    'resamples it to 48 kHz, cuts 3 s segments and embeds them with the built-in spectrogram '
    'statistics; embeddings are cached in custom-classifier/embeddings-cache, so a second run '
    'embeds nothing. Press the inject button; the model is saved in '
    'custom-classifier/recordings-model. Point the loader at your own folder of recordings to '
    'train on them.')

p = lambda n: nid('c3d0', n)
folder_name = 'Fictus cantor_Singing Fiction Finch'
rec = os.path.join(os.path.dirname(__file__), '..', 'example-data', 'embeddings', folder_name,
                   'rec01.birdnet.embeddings.txt')
with open(rec) as f:
    start, end, values = f.readline().strip().split('\t')
embedding = [float(v) for v in values.split(',')]
row = [f'{folder_name}/rec01.birdnet.embeddings.txt']
predict = flow('c3d0', 'Predict', 'Scores embeddings with a saved model.', [
    {'id': p(1), 'type': 'comment', 'name': 'Predict',
     'info': 'Scores an embedding with the demo model that ships with the package and outputs '
             'the labels above each class\'s F1-best threshold. Press the inject button. To use '
             'a model from a training flow, set the model directory (e.g. '
             'custom-classifier/folder-model) or wire the trainer\'s first output into predict.',
     'x': 160, 'y': 40},
    {'id': p(2), 'type': 'inject', 'name': 'one embedding',
     'props': [{'p': 'payload'}, {'p': 'source', 'v': json.dumps({'file': row[0], 'start': 0, 'end': 3}),
                                  'vt': 'json'}],
     'repeat': '', 'once': False, 'payload': json.dumps(embedding), 'payloadType': 'json',
     'wires': [[p(3)]], 'x': 150, 'y': 100},
    {'id': p(3), 'type': 'classifier-predict', 'name': '', 'modelDir': f'{PKG}/model',
     'modelDirType': 'str', 'thresholdMode': 'f1', 'threshold': 0.5, 'maxLabels': 0,
     'wires': [[p(4)]], 'x': 380, 'y': 100},
    {'id': p(4), 'type': 'debug', 'name': 'labels', 'active': True, 'tosidebar': True,
     'console': False, 'tostatus': True, 'complete': 'true', 'targetType': 'full',
     'statusVal': 'payload[0].label', 'statusType': 'msg', 'wires': [], 'x': 580, 'y': 100},
])

def retrain_flow(prefix, label, trigger, extra, comment):
    """trigger -> loader (settles, holds out test files) -> trainer (model store) -> debug, and
    an inject that retrains at once."""
    i = lambda n: nid(prefix, n)
    recordings = f'{PKG}/recordings'
    return flow(prefix, label, comment, [
        {'id': i(1), 'type': 'comment', 'name': label, 'info': comment, 'x': 200, 'y': 40},
        dict({'id': i(2), 'wires': [[i(4)]], 'x': 140, 'y': 100}, **trigger),
        {'id': i(3), 'type': 'inject', 'name': 'retrain now', 'props': [], 'repeat': '',
         'once': False, 'wires': [[i(4)]], 'x': 140, 'y': 160},
        {'id': i(4), 'type': 'classifier-loader', 'name': '', 'mode': 'file', 'path': recordings,
         'pathType': 'str', 'format': 'folder', 'labelColumn': '', 'labelSeparator': ',',
         'fileColumn': '', 'startColumn': '', 'endColumn': '', 'ignoreColumns': '',
         'delimiter': 'auto', 'validationSplit': 0.25, 'seed': 1, 'testData': '',
         'holdout': 0.2, 'settle': 2, 'cropMode': 'center', 'overlap': 0, 'fmin': 0,
         'fmax': 15000, 'audioSpeed': 1, 'embedder': 'builtin', 'modelPath': '',
         'modelSampleRate': 48000, 'modelInputSeconds': 3, 'modelOutput': '',
         'customLayers': '', 'cacheDir': '', 'wires': [[i(5)]], 'x': 360, 'y': 120},
        {'id': i(5), 'type': 'classifier-trainer', 'name': '', 'epochs': 30, 'batchSize': 32,
         'learningRate': 0.01, 'hiddenUnits': 0, 'dropout': 0, 'focalLoss': False,
         'focalGamma': 2, 'focalAlpha': 0.25, 'l2': 0.00001, 'weightDecay': 0.004,
         'allowNoValidation': False, 'modelDir': extra['store'], 'modelDirType': 'str',
         'saveAs': 'store', 'keep': 5, 'metric': 'averagePrecision', 'busy': 'queue',
         'queueLength': 1, 'wires': [[i(6)], []], 'x': 580, 'y': 120},
        {'id': i(6), 'type': 'debug', 'name': 'promotion', 'active': True, 'tosidebar': True,
         'console': False, 'tostatus': True, 'complete': 'payload.promotion', 'targetType': 'msg',
         'statusVal': 'payload.promotion.reason', 'statusType': 'msg', 'wires': [],
         'x': 800, 'y': 120},
    ])


watched = retrain_flow(
    'e5b0', 'Retrain when clips arrive',
    {'type': 'watch', 'name': 'recorder folder', 'files': f'{PKG}/recordings', 'recursive': True},
    {'store': 'custom-classifier/watched-store'},
    'Retrains whenever the training folder changes: a watch node fires when a recorder writes a '
    'clip, the loader waits until nothing has changed for 2 s (a clip still being written is never '
    'read half-way, and a burst of writes is one retraining) and embeds only new clips (the rest '
    'come from the embedding cache). The trainer saves each run as a new version in the model '
    'store custom-classifier/watched-store and makes it current only when it scores at least as '
    'well as the current one on the same held-out files (a fifth of the files, chosen by a hash of '
    'their path). A predict node whose model directory is the store follows the current version. '
    'Press "retrain now" for a first model. For your recorder, set the watch node and the loader '
    'to its folder, as an absolute path: the watch node takes relative paths from the folder '
    'Node-RED was started in. Send msg.rollback = true to the trainer to go back a version.')

mqtt = retrain_flow(
    'f6a0', 'Retrain on an MQTT message',
    {'type': 'mqtt in', 'name': 'sensor says: new clips', 'topic': 'recorder/clips', 'qos': '1',
     'datatype': 'utf8', 'broker': nid('f6a0', 99), 'nl': False, 'rap': True, 'rh': 0,
     'inputs': 0},
    {'store': 'custom-classifier/mqtt-store'},
    'Retrains when a sensor or recorder publishes to the MQTT topic recorder/clips (any payload): '
    'the loader waits until the training folder has settled, and messages that arrive meanwhile '
    'are one retraining. Set the broker (here localhost:1883) and the loader\'s path to your own. '
    'Versions go to the model store custom-classifier/mqtt-store; the better one becomes current. '
    'Press "retrain now" to train without a broker.')
mqtt.append({'id': nid('f6a0', 99), 'type': 'mqtt-broker', 'name': 'local broker',
             'broker': 'localhost', 'port': '1883', 'clientid': '', 'autoConnect': True,
             'usetls': False, 'protocolVersion': '4', 'keepalive': '60', 'cleansession': True,
             'autoUnsubscribe': True})

os.makedirs(OUT, exist_ok=True)
for name, nodes in [('train-from-a-folder', folder), ('train-from-a-csv-table', table),
                    ('train-from-recordings', recordings), ('predict', predict),
                    ('retrain-when-clips-arrive', watched),
                    ('retrain-on-an-mqtt-message', mqtt)]:
    with open(os.path.join(OUT, f'{name}.json'), 'w') as f:
        json.dump(nodes, f, indent=2)
        f.write('\n')
print('written', OUT)
