"""What a user writes instead of running edge-agent: the baseline of ``python -m bench agent``.

    python bench/user_script.py MODEL VIDEO HOST PORT TOPIC THREADS [MEAN STD]

One loop, no capture thread, no store: OpenCV decodes each frame on the loop's own thread.
"""

import json
import sys
import time

import cv2
import numpy as np
import paho.mqtt.client as mqtt
from ai_edge_litert.interpreter import Interpreter

model, video, host, port, topic, threads = sys.argv[1:7]
mean, std = (float(v) for v in (sys.argv[7:9] or ("127.5", "127.5")))
interpreter = Interpreter(model_path=model, num_threads=int(threads))
interpreter.allocate_tensors()
inp, outs = interpreter.get_input_details()[0], interpreter.get_output_details()
_, height, width, _ = inp["shape"]
scale, zero = inp["quantization"]
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
client.connect(host, int(port))
client.loop_start()
capture = cv2.VideoCapture(video)
sent = None
while True:
    ok, frame = capture.read()
    if not ok:
        break
    ts = time.time()
    rgb = cv2.cvtColor(cv2.resize(frame, (width, height)), cv2.COLOR_BGR2RGB)
    x = rgb if inp["dtype"] == np.uint8 else (rgb.astype(np.float32) - mean) / std
    if inp["dtype"] == np.int8:
        x = np.clip(np.round(x / scale + zero), -128, 127)
    interpreter.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
    interpreter.invoke()
    out = [interpreter.get_tensor(o["index"])[0] for o in outs]
    if len(out) == 4:  # SSD with its post-processing op: boxes, classes, scores, count
        boxes, classes, scores = out[0], out[1], out[2]
        result = [
            {"label": int(c), "score": round(float(s), 3), "box": b.round(3).tolist()}
            for b, c, s in zip(boxes, classes, scores, strict=True)
            if s >= 0.5
        ]
    elif out[0].ndim == 3:  # a segmentation mask
        result = {"person": round(float((out[0] > 0.5).mean()), 4)}
    else:  # classification scores
        result = {"top": int(out[0].argmax()), "score": float(out[0].max())}
    sent = client.publish(topic, json.dumps({"ts": ts, "result": result}), qos=1)
if sent is not None:
    sent.wait_for_publish(30)
client.loop_stop()
client.disconnect()
