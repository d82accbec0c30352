import chainer
import chainer.functions as F
import chainer.links as L


class CourseMLP(chainer.Chain):
    """784-500-300-100-10 with ReLU (the course's MLP)."""

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(784, 500)
            self.l2 = L.Linear(500, 300)
            self.l3 = L.Linear(300, 100)
            self.l4 = L.Linear(100, 10)

    def forward(self, x):
        h = F.relu(self.l1(x))
        h = F.relu(self.l2(h))
        h = F.relu(self.l3(h))
        return self.l4(h)
