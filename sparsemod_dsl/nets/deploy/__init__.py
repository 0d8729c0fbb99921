"""Deployment: a network of a point, written for a microcontroller and run where it runs.

`export` writes the formats (`tflite`: the deployed graph's int8 `.tflite` flatbuffer,
from torch's int8 model read by `int8`; `csource`: C++ source for a TensorFlow Lite
Micro firmware; `onnx_export`: float and QDQ int8 ONNX); `tflm` runs a model in
TensorFlow Lite Micro's interpreter and reads its arena; `measure` sets the cost
model's figures beside what TFLM measures. Imports `nets`, never `search`.
"""
